//! A container's CPU and memory read straight from its cgroup, when the
//! engine runs on this host: two reads [`CPU_WINDOW`] apart. The engine's
//! own stats take a second or two per sample (Docker answers on its
//! collector's next tick, one-shot or not), and Podman's carry no
//! previous CPU sample and no memory breakdown; the cgroup files have
//! both at once. Found through `/proc/<pid>/cgroup` of the container's
//! first process, and used only when that path names the container's id
//! (a provisioner in another PID or cgroup namespace finds no such path
//! and falls back to the engine's stats). cgroup v1 (`cpuacct`,
//! `memory`) and v2 (`cpu.stat`, `memory.current`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::backend::Usage;

/// How long CPU use is measured over.
pub(super) const CPU_WINDOW: Duration = Duration::from_millis(250);

/// Where a container's counters are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Counters {
    /// cgroup v1: the `cpuacct` and `memory` controllers' directories.
    V1 { cpuacct: PathBuf, memory: PathBuf },
    /// cgroup v2: the unified directory.
    V2 { dir: PathBuf },
}

/// A container's counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    cpu_ns: u64,
    at: Instant,
}

/// The counters of container `id`, whose first process is `pid`, from
/// the text of `/proc/<pid>/cgroup` and the hierarchy under `root`
/// (`/sys/fs/cgroup`); `None` unless the paths name the container and
/// their files are there.
pub(super) fn locate(proc_cgroup: &str, id: &str, root: &Path) -> Option<Counters> {
    if id.len() < 12 {
        return None;
    }
    let mut v1 = (None, None);
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        if !path.contains(id) {
            continue;
        }
        let relative = path.trim_start_matches('/');
        if controllers.is_empty() {
            unified = Some(root.join(relative));
        }
        // a v1 controller's hierarchy is mounted under its controllers'
        // names (`cpuacct`, or `cpu,cpuacct` where they share one)
        let dir = root.join(controllers).join(relative);
        for controller in controllers.split(',') {
            match controller {
                "cpuacct" => v1.0 = Some(dir.clone()),
                "memory" => v1.1 = Some(dir.clone()),
                _ => {}
            }
        }
    }
    match (v1, unified) {
        ((Some(cpuacct), Some(memory)), _)
            if cpuacct.join("cpuacct.usage").is_file()
                && memory.join("memory.usage_in_bytes").is_file() =>
        {
            Some(Counters::V1 { cpuacct, memory })
        }
        (_, Some(dir)) if dir.join("memory.current").is_file() => Some(Counters::V2 { dir }),
        _ => None,
    }
}

/// The counters of container `id` (first process `pid`) on this host.
pub(super) fn locate_on_host(pid: i64, id: &str) -> Option<Counters> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    locate(&text, id, Path::new("/sys/fs/cgroup"))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A `key value` line's value in a stat file.
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Counters {
    fn sample(&self) -> Option<Sample> {
        let cpu_ns = match self {
            Counters::V1 { cpuacct, .. } => {
                read(&cpuacct.join("cpuacct.usage"))?.trim().parse().ok()?
            }
            Counters::V2 { dir } => stat_field(&read(&dir.join("cpu.stat"))?, "usage_usec")? * 1000,
        };
        Some(Sample {
            cpu_ns,
            at: Instant::now(),
        })
    }

    /// Memory in use less the inactive page cache (as `docker stats`
    /// counts it), and the limit (the host's memory when unlimited).
    fn memory(&self) -> Option<(u64, u64)> {
        let (usage, stat, limit) = match self {
            Counters::V1 { memory, .. } => (
                read(&memory.join("memory.usage_in_bytes"))?,
                read(&memory.join("memory.stat"))?,
                read(&memory.join("memory.limit_in_bytes"))?,
            ),
            Counters::V2 { dir } => (
                read(&dir.join("memory.current"))?,
                read(&dir.join("memory.stat"))?,
                read(&dir.join("memory.max"))?,
            ),
        };
        let usage: u64 = usage.trim().parse().ok()?;
        let cache = stat_field(&stat, "total_inactive_file")
            .or_else(|| stat_field(&stat, "inactive_file"))
            .unwrap_or(0);
        let host = host_memory_bytes().unwrap_or(u64::MAX);
        let limit = limit.trim().parse::<u64>().unwrap_or(host).min(host);
        Some((usage.saturating_sub(cache), limit))
    }

    /// CPU (percent of one core over [`CPU_WINDOW`]) and memory.
    pub(super) async fn usage(&self) -> Option<Usage> {
        let first = self.sample()?;
        tokio::time::sleep(CPU_WINDOW).await;
        let second = self.sample()?;
        let (memory_bytes, memory_limit_bytes) = self.memory()?;
        let wall = second.at.duration_since(first.at).as_nanos() as f64;
        let cpu = second.cpu_ns.saturating_sub(first.cpu_ns) as f64;
        let cpu_percent = if wall > 0.0 { cpu / wall * 100.0 } else { 0.0 };
        Some(Usage {
            cpu_percent: (cpu_percent * 10.0).round() / 10.0,
            memory_bytes,
            memory_limit_bytes,
        })
    }
}

/// `MemTotal` of this host.
fn host_memory_bytes() -> Option<u64> {
    let text = read(Path::new("/proc/meminfo"))?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "2ea522ccb7275f1b4d743770a9af36073b405c0e13c5719db17a9a6ca64de19b";

    /// A cgroup hierarchy under a directory of its own, removed on drop.
    struct Root(PathBuf);

    impl Root {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A hierarchy with the files given.
    fn hierarchy(files: &[(&str, &str)]) -> Root {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("cgroup-test-{}-{n}", std::process::id()));
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        Root(root)
    }

    #[test]
    fn cgroup_v1_counters_are_found_by_the_container_id() {
        let proc_cgroup = format!(
            "9:name=systemd:/docker/{ID}\n4:memory:/docker/{ID}\n2:cpuacct:/docker/{ID}\n\
             1:cpu:/docker/{ID}\n0::/docker/{ID}\n"
        );
        let root = hierarchy(&[
            (
                &format!("cpuacct/docker/{ID}/cpuacct.usage"),
                "1500000000\n",
            ),
            (
                &format!("memory/docker/{ID}/memory.usage_in_bytes"),
                "1180696576\n",
            ),
        ]);
        assert_eq!(
            locate(&proc_cgroup, ID, root.path()),
            Some(Counters::V1 {
                cpuacct: root.path().join(format!("cpuacct/docker/{ID}")),
                memory: root.path().join(format!("memory/docker/{ID}")),
            })
        );
        // another container's path, or a short id, is not ours
        assert_eq!(locate(&proc_cgroup, &"f".repeat(64), root.path()), None);
        assert_eq!(locate(&proc_cgroup, "2ea", root.path()), None);
    }

    #[test]
    fn cpu_and_cpuacct_mounted_together_and_podman_paths_are_found() {
        let path = format!("libpod_parent/libpod-{ID}");
        let proc_cgroup = format!("4:memory:/{path}\n2:cpu,cpuacct:/{path}\n");
        let root = hierarchy(&[
            (&format!("cpu,cpuacct/{path}/cpuacct.usage"), "1\n"),
            (&format!("memory/{path}/memory.usage_in_bytes"), "1\n"),
        ]);
        assert!(matches!(
            locate(&proc_cgroup, ID, root.path()),
            Some(Counters::V1 { .. })
        ));
    }

    #[test]
    fn cgroup_v2_counters_are_found_and_read() {
        let proc_cgroup = format!("0::/system.slice/docker-{ID}.scope\n");
        let dir = format!("system.slice/docker-{ID}.scope");
        let root = hierarchy(&[
            (&format!("{dir}/memory.current"), "50000000\n"),
            (
                &format!("{dir}/memory.stat"),
                "anon 1\ninactive_file 10000000\n",
            ),
            (&format!("{dir}/memory.max"), "max\n"),
            (
                &format!("{dir}/cpu.stat"),
                "usage_usec 2500\nuser_usec 2000\n",
            ),
        ]);
        let counters = locate(&proc_cgroup, ID, root.path()).expect("found");
        assert_eq!(counters.sample().unwrap().cpu_ns, 2_500_000);
        let (memory, limit) = counters.memory().unwrap();
        assert_eq!(memory, 40_000_000, "usage less the inactive page cache");
        assert_eq!(Some(limit), host_memory_bytes(), "max: the host's memory");
    }

    #[test]
    fn v1_memory_subtracts_the_total_inactive_file_and_caps_the_limit() {
        let root = hierarchy(&[
            ("memory.usage_in_bytes", "1000000\n"),
            (
                "memory.stat",
                "cache 5\ninactive_file 1\ntotal_inactive_file 250000\n",
            ),
            ("memory.limit_in_bytes", "67108864\n"),
        ]);
        let memory = root.path().to_owned();
        let counters = Counters::V1 {
            cpuacct: PathBuf::from("/nonexistent"),
            memory: memory.clone(),
        };
        assert_eq!(counters.memory(), Some((750_000, 67_108_864)));
        std::fs::write(
            memory.join("memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        assert_eq!(counters.memory().unwrap().1, host_memory_bytes().unwrap());
    }
}
