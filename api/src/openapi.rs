//! The OpenAPI 3.1 document of the API, generated from the handlers'
//! annotations and the types they answer (utoipa). Served at
//! `/v1/openapi.json` and committed as `api/openapi.json`; a test fails
//! when the two drift. Every operation may answer the problem documents
//! of its errors, which one modifier adds to all of them.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::problem::Problem;
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "provisiond",
        description = "The REST control plane of provision: tenants (IoT service providers) with \
            their own ingest server and admin panel on a container platform. The JSON bodies are \
            the documents the CLI prints with `--json`; errors are problem documents (RFC 9457) \
            with the CLI's error kind and exit code. On TCP every request needs an operator \
            token (`provision token create <name>`); on the Unix socket, its permissions are \
            the authentication."
    ),
    paths(
        healthz,
        routes::metrics,
        openapi_json,
        routes::tenants,
        routes::tenant,
        routes::start,
        routes::stop,
        routes::destroy,
        routes::plan,
        routes::logs,
        routes::reconcile,
        routes::upgrade,
        routes::upgrade_all,
        routes::gateway_add,
        routes::gateway_list,
        routes::gateway_revoke,
        routes::gateway_ca,
        routes::alert_add,
        routes::alert_list,
        routes::alert_remove,
        routes::report_schedule,
        routes::report_send,
        routes::operations,
        routes::operation,
        routes::endpoints,
        routes::nodes,
        routes::capacity,
        routes::node_drain,
        routes::node_activate,
    ),
    components(schemas(Problem)),
    modifiers(&Errors),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// The daemon answers while it runs.
#[utoipa::path(get, path = "/healthz", tag = "daemon",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "daemon",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document())
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as committed: pretty JSON and a final newline.
pub fn document_text() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the document serializes");
    text.push('\n');
    text
}

/// Adds the error answers to every operation, and the bearer scheme.
struct Errors;

const ERRORS: [(&str, &str); 7] = [
    (
        "400",
        "The request is not valid (a provider id, a parameter, a body that is not JSON)",
    ),
    (
        "401",
        "On TCP: no operator token, or a wrong or revoked one",
    ),
    ("404", "Unknown tenant, gateway, alert rule or operation"),
    (
        "409",
        "A conflict: a port taken, a pool exhausted, a gateway that exists, mail off (no relay)",
    ),
    ("422", "A JSON body of the wrong shape"),
    ("500", "An error of another kind"),
    (
        "503",
        "The engine or Cassandra cannot be reached, or refuses",
    ),
];

fn add_errors(operation: &mut Operation) {
    for (status, description) in ERRORS {
        let problem = ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert(RefOr::T(problem));
    }
}

impl Modify for Errors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_errors(operation);
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An operator token (TCP only)"))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    /// `api/openapi.json` is the document the code makes: regenerate it
    /// with `provisiond --openapi > api/openapi.json`.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let committed = include_str!("../openapi.json");
        let generated = super::document_text();
        assert!(
            committed == generated,
            "api/openapi.json is out of date: run `provisiond --openapi > api/openapi.json`"
        );
        let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
