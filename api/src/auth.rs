//! Who asks. On the Unix socket the file's permissions are the
//! authentication (as with dockerd) and the caller is named by the
//! socket's peer credentials (`unix:<user>`); on TCP every request needs a
//! live operator token (`Authorization: Bearer <token>`), and the caller
//! is the token's name (`token:<name>`). The operations log records it.

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use provisioner::ops::user_name;
use tokio::net::UnixListener;

use crate::problem::ApiError;
use crate::AppState;

/// The caller of a request, as the operations log names it.
#[derive(Debug, Clone)]
pub struct Requester(pub String);

/// The peer of a Unix socket connection.
#[derive(Debug, Clone, Copy)]
pub struct UnixPeer {
    pub uid: Option<u32>,
}

impl Connected<IncomingStream<'_, UnixListener>> for UnixPeer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> UnixPeer {
        UnixPeer {
            uid: stream.io().peer_cred().ok().map(|c| c.uid()),
        }
    }
}

/// Names the caller on the Unix socket.
pub async fn unix_caller(
    ConnectInfo(peer): ConnectInfo<UnixPeer>,
    mut request: Request,
    next: Next,
) -> Response {
    let who = peer
        .uid
        .map_or_else(|| "unknown".to_owned(), |uid| user_name(&uid.to_string()));
    request
        .extensions_mut()
        .insert(Requester(format!("unix:{who}")));
    next.run(request).await
}

/// Refuses a TCP request without a live operator token (401, nothing
/// done); names the caller by the token's name.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return ApiError::unauthorized(
            "this listener needs an operator token: Authorization: Bearer <token> \
             (`provision token create <name>` makes one)",
        )
        .into_response();
    };
    match state.provisioner.authenticate(token).await {
        Ok(Some(name)) => {
            request
                .extensions_mut()
                .insert(Requester(format!("token:{name}")));
            next.run(request).await
        }
        Ok(None) => ApiError::unauthorized("the operator token is not valid (wrong or revoked)")
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
