//! The console's page and files: embedded from `dashboard/dist/` at compile time (in every
//! profile: rust-embed's `debug-embed`), or served from
//! `ORBITMQ_DASHBOARD_DIR` when set (a front end under development against a built server).
//! `index.html` answers `/` and every path that is not a file, so each page's deep link and a
//! reload open it; a missing file with an asset's extension is a 404.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::Ctx;

#[derive(RustEmbed)]
#[folder = "../dashboard/dist/"]
struct Embedded;

/// Where the files come from.
#[derive(Debug, Clone)]
pub(crate) enum Assets {
    /// Built into the binary.
    Embedded,
    /// `ORBITMQ_DASHBOARD_DIR`.
    Dir(PathBuf),
}

impl Assets {
    /// `ORBITMQ_DASHBOARD_DIR` if set, else the embedded files.
    pub(crate) fn from_env() -> Assets {
        match std::env::var_os("ORBITMQ_DASHBOARD_DIR") {
            Some(dir) if !dir.is_empty() => Assets::Dir(PathBuf::from(dir)),
            _ => Assets::Embedded,
        }
    }

    async fn get(&self, path: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            Assets::Embedded => Embedded::get(path).map(|f| f.data),
            Assets::Dir(dir) => {
                // Only plain relative names: no `..`, no absolute paths, no empty segments.
                if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
                    return None;
                }
                let file = dir.join(path);
                let read = tokio::task::spawn_blocking(move || {
                    std::fs::metadata(&file)
                        .is_ok_and(|m| m.is_file())
                        .then(|| std::fs::read(&file))
                });
                match read.await {
                    Ok(Some(Ok(bytes))) => Some(Cow::Owned(bytes)),
                    _ => None,
                }
            }
        }
    }
}

/// Extensions of files the front end builds: a missing one is a 404, not the page.
const ASSET_TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("gif", "image/gif"),
    ("ico", "image/x-icon"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain; charset=utf-8"),
    ("wasm", "application/wasm"),
];

fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    ASSET_TYPES.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t)
}

/// A file, the page, or a 404.
pub(crate) async fn serve(State(ctx): State<Arc<Ctx>>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if !path.is_empty()
        && let Some(body) = ctx.assets.get(path).await
    {
        let kind = content_type(path).unwrap_or("application/octet-stream");
        // Vite names built files by their hash: they never change under one name.
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)], body)
            .into_response();
    }
    if !path.is_empty() && content_type(path).is_some() {
        return (StatusCode::NOT_FOUND, format!("no file /{path}\n")).into_response();
    }
    match ctx.assets.get("index.html").await {
        Some(page) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
            page,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "the console's index.html is missing (ORBITMQ_DASHBOARD_DIR points at no built front end?)\n",
        )
            .into_response(),
    }
}
