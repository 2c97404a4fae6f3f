//! The page templates, embedded in the binary and registered with
//! handlebars once at start.
//!
//! Every page but the login page is rendered inside the `layout` partial,
//! which draws the header, the navigation and the logout form; the page's
//! data carries a `chrome` object for it (see `pages::Chrome`). Handlebars
//! escapes every `{{value}}`; the only unescaped output (`{{{svg}}}`) is SVG
//! the server drew itself, with its own text escaped.

use handlebars::Handlebars;
use serde::Serialize;

use crate::error::AppError;

/// The page templates by name.
const PAGES: &[(&str, &str)] = &[
    ("login", include_str!("../templates/login.hbs")),
    ("dashboard", include_str!("../templates/dashboard.hbs")),
    ("gateway", include_str!("../templates/gateway.hbs")),
    ("gateways", include_str!("../templates/gateways.hbs")),
    (
        "commissioned",
        include_str!("../templates/commissioned.hbs"),
    ),
    ("reports", include_str!("../templates/reports.hbs")),
    ("settings", include_str!("../templates/settings.hbs")),
    ("alerts", include_str!("../templates/alerts.hbs")),
    ("alert_edit", include_str!("../templates/alert_edit.hbs")),
];

/// Partials the pages share besides the layout: the alert rule form's
/// fields (the Alerts page's create form and the edit page).
const PARTIALS: &[(&str, &str)] = &[("rule_form", include_str!("../templates/rule_form.hbs"))];

const LAYOUT: &str = include_str!("../templates/layout.hbs");

/// The stylesheet served at `/assets/app.css`.
pub const APP_CSS: &str = include_str!("../assets/app.css");

/// The compiled templates.
#[derive(Debug)]
pub struct Templates {
    registry: Handlebars<'static>,
}

impl Templates {
    /// Compiles every template. The templates are part of the binary, so a
    /// failure here is a bug, caught by the unit tests.
    pub fn new() -> Result<Self, Box<handlebars::TemplateError>> {
        let mut registry = Handlebars::new();
        registry
            .register_partial("layout", LAYOUT)
            .map_err(Box::new)?;
        for (name, source) in PARTIALS {
            registry.register_partial(name, source).map_err(Box::new)?;
        }
        for (name, source) in PAGES {
            registry
                .register_template_string(name, source)
                .map_err(Box::new)?;
        }
        Ok(Templates { registry })
    }

    /// Renders page `name` with `data`.
    pub fn render<T: Serialize>(&self, name: &'static str, data: &T) -> Result<String, AppError> {
        self.registry
            .render(name, data)
            .map_err(|source| AppError::Render {
                page: name,
                source: Box::new(source),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        Templates::new().unwrap();
    }

    #[test]
    fn values_are_escaped_and_the_layout_wraps_pages() {
        let t = Templates::new().unwrap();
        let html = t
            .render(
                "commissioned",
                &serde_json::json!({
                    "chrome": {"title": "t", "display_name": "<b>Acme</b>", "csrf": "c0ffee", "username": "alice"},
                    "id": "gw-1",
                    "token": "tok\"en"
                }),
            )
            .unwrap();
        assert!(html.contains("&lt;b&gt;Acme&lt;/b&gt;"));
        assert!(!html.contains("<b>Acme</b>"));
        assert!(
            html.contains(r#"name="csrf" value="c0ffee""#),
            "the logout form carries the token"
        );
        assert!(html.contains("tok&quot;en"));
    }
}
