//! The upload client against a test server that behaves like MAAS's
//! boot-resources API 2.0 (create with multipart fields, chunked PUTs to the
//! file's upload_uri, sha256 verified on completion, progress in percent).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use kiln_maas::upload::{ApiKey, UploadError, UploadRequest, upload};
use sha2::{Digest, Sha256};

#[derive(Default)]
struct Res {
    id: u64,
    file_id: u64,
    fields: BTreeMap<String, String>,
    data: Vec<u8>,
}

#[derive(Default)]
struct Maas {
    resources: Vec<Res>,
    puts: Vec<(u64, usize)>,
    fail_at_put: Option<usize>,
    bad_auth: usize,
    posts: usize,
}

type Shared = Arc<Mutex<Maas>>;

fn auth_ok(h: &HeaderMap) -> bool {
    let v = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    v.starts_with("OAuth ")
        && v.contains("oauth_signature_method=\"PLAINTEXT\"")
        && v.contains("oauth_consumer_key=\"CK\"")
        && v.contains("oauth_token=\"TK\"")
        && v.contains("oauth_signature=\"%26SECRET\"")
        && v.contains("oauth_version=\"1.0\"")
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn res_json(r: &Res) -> serde_json::Value {
    let size: u64 = r.fields["size"].parse().unwrap();
    let have = r.data.len() as u64;
    let complete = have == size;
    let mut file = serde_json::json!({
        "filename": "root-tgz", "filetype": r.fields["filetype"], "sha256": r.fields["sha256"],
        "size": size, "complete": complete,
    });
    if !complete {
        file["progress"] = serde_json::json!(100.0 * have as f64 / size as f64);
        file["upload_uri"] = serde_json::json!(format!(
            "/MAAS/api/2.0/boot-resources/{}/upload/{}/",
            r.id, r.file_id
        ));
    }
    serde_json::json!({
        "id": r.id, "type": "Uploaded", "name": r.fields["name"], "architecture": r.fields["architecture"],
        "resource_uri": format!("/MAAS/api/2.0/boot-resources/{}/", r.id),
        "sets": {"20261130": {"version": "20261130", "label": "uploaded", "size": size, "complete": complete, "files": {"root-tgz": file}}}
    })
}

fn parse_multipart(h: &HeaderMap, body: &[u8]) -> BTreeMap<String, String> {
    let ct = h.get("content-type").unwrap().to_str().unwrap();
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let text = String::from_utf8_lossy(body);
    let mut out = BTreeMap::new();
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head
            .split("name=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        out.insert(name.to_owned(), value.trim_end_matches("\r\n").to_owned());
    }
    out
}

async fn list(State(s): State<Shared>, h: HeaderMap) -> Response {
    if !auth_ok(&h) {
        s.lock().unwrap().bad_auth += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let m = s.lock().unwrap();
    let v: Vec<_> = m
        .resources
        .iter()
        .map(|r| serde_json::json!({"id": r.id, "type": "Uploaded", "name": r.fields["name"], "architecture": r.fields["architecture"]}))
        .collect();
    json(StatusCode::OK, serde_json::json!(v))
}

async fn create(State(s): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if !auth_ok(&h) {
        s.lock().unwrap().bad_auth += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let fields = parse_multipart(&h, &body);
    for k in ["name", "architecture", "sha256", "size"] {
        if !fields.contains_key(k) {
            return (StatusCode::BAD_REQUEST, format!("missing {k}")).into_response();
        }
    }
    let mut m = s.lock().unwrap();
    m.posts += 1;
    let id = m.resources.len() as u64 + 7;
    let r = Res {
        id,
        file_id: id + 100,
        fields,
        data: vec![],
    };
    let v = res_json(&r);
    m.resources.push(r);
    json(StatusCode::CREATED, v)
}

async fn read(State(s): State<Shared>, h: HeaderMap, AxPath(id): AxPath<u64>) -> Response {
    if !auth_ok(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let m = s.lock().unwrap();
    match m.resources.iter().find(|r| r.id == id) {
        Some(r) => json(StatusCode::OK, res_json(r)),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn upload_chunk(
    State(s): State<Shared>,
    h: HeaderMap,
    AxPath((id, file_id)): AxPath<(u64, u64)>,
    body: Bytes,
) -> Response {
    if !auth_ok(&h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut m = s.lock().unwrap();
    let n = m.puts.len();
    if m.fail_at_put == Some(n) {
        m.fail_at_put = None;
        return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
    }
    let len: usize = h
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if len == 0 {
        return (StatusCode::BAD_REQUEST, "Missing data.").into_response();
    }
    if len != body.len() {
        return (
            StatusCode::BAD_REQUEST,
            "Content-Length doesn't equal size of received data.",
        )
            .into_response();
    }
    let Some(r) = m
        .resources
        .iter_mut()
        .find(|r| r.id == id && r.file_id == file_id)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let size: usize = r.fields["size"].parse().unwrap();
    if r.data.len() == size {
        return (StatusCode::BAD_REQUEST, "Cannot upload to a complete file.").into_response();
    }
    if r.data.len() + body.len() > size {
        return (StatusCode::BAD_REQUEST, "Too much data received.").into_response();
    }
    let offset = r.data.len() as u64;
    r.data.extend_from_slice(&body);
    if r.data.len() == size {
        let hex: String = Sha256::digest(&r.data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if hex != r.fields["sha256"] {
            r.data.clear();
            return (
                StatusCode::BAD_REQUEST,
                "Saved content does not match given SHA256 value.",
            )
                .into_response();
        }
    }
    m.puts.push((offset, body.len()));
    StatusCode::OK.into_response()
}

async fn serve() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/MAAS/api/2.0/boot-resources/", get(list).post(create))
        .route("/MAAS/api/2.0/boot-resources/{id}/", get(read))
        .route(
            "/MAAS/api/2.0/boot-resources/{id}/upload/{file_id}/",
            put(upload_chunk),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/MAAS"), state)
}

fn artifact(dir: &std::path::Path) -> std::path::PathBuf {
    // A small real tgz: a tar stream in a gzip member.
    let mut w = kiln_image::tar::TarWriter::new(Vec::new());
    // Incompressible bytes, so the tgz spans many chunks.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut h = kiln_image::tar::EntryHeader::new(b"./blob", kiln_image::tar::EntryKind::File);
    h.size = data.len() as u64;
    w.append(&h, &data).unwrap();
    let tar = w.finish().unwrap();
    let p = dir.join("root.tgz");
    std::fs::write(&p, kiln_image::gzip::gzip_member(1, &tar).unwrap()).unwrap();
    p
}

fn request(url: &str, path: &std::path::Path, filetype: Option<&str>) -> UploadRequest {
    UploadRequest {
        url: url.to_owned(),
        api_key: ApiKey::parse("CK:TK:SECRET").unwrap(),
        name: "custom/debian-12".into(),
        title: "Debian 12".into(),
        architecture: "amd64/generic".into(),
        filetype: filetype.map(str::to_owned),
        base_image: None,
        path: path.to_owned(),
        chunk_size: 4096,
    }
}

#[tokio::test]
async fn upload_creates_then_puts_chunks_in_order() {
    let (url, state) = serve().await;
    let t = tempfile::tempdir().unwrap();
    let p = artifact(t.path());
    let mut seen = vec![];
    let r = upload(&request(&url, &p, None), &mut |pr| seen.push(pr.uploaded))
        .await
        .unwrap();
    let size = std::fs::metadata(&p).unwrap().len();
    assert_eq!(
        (r.filetype.as_str(), r.size, r.sent, r.resumed_from),
        ("tgz", size, size, 0)
    );
    let m = state.lock().unwrap();
    assert_eq!(m.bad_auth, 0);
    let res = &m.resources[0];
    assert_eq!(res.fields["name"], "custom/debian-12");
    assert_eq!(res.fields["title"], "Debian 12");
    assert_eq!(res.fields["architecture"], "amd64/generic");
    assert_eq!(res.fields["filetype"], "tgz");
    assert_eq!(res.fields["size"], size.to_string());
    assert_eq!(res.fields["sha256"], r.sha256);
    assert_eq!(res.data, std::fs::read(&p).unwrap());
    let offsets: Vec<u64> = m.puts.iter().map(|x| x.0).collect();
    let expected: Vec<u64> = (0..size.div_ceil(4096)).map(|i| i * 4096).collect();
    assert_eq!(offsets, expected, "chunks out of order");
    assert_eq!(*seen.last().unwrap(), size);
}

#[tokio::test]
async fn interrupted_upload_resumes_where_maas_stopped() {
    let (url, state) = serve().await;
    state.lock().unwrap().fail_at_put = Some(5);
    let t = tempfile::tempdir().unwrap();
    let p = artifact(t.path());
    let e = upload(&request(&url, &p, Some("tgz")), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(e, UploadError::Status { status: 503, .. }),
        "{e:?}"
    );
    let r = upload(&request(&url, &p, Some("tgz")), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(r.resumed_from, 5 * 4096);
    {
        let m = state.lock().unwrap();
        assert_eq!(m.posts, 1, "the resource was created twice");
        assert_eq!(m.resources[0].data, std::fs::read(&p).unwrap());
    }
    // A third call finds the file complete and sends nothing.
    let r = upload(&request(&url, &p, None), &mut |_| {}).await.unwrap();
    assert!(r.already_complete && r.sent == 0);
}

#[tokio::test]
async fn wrong_filetype_and_bad_key_are_refused_before_any_request() {
    let (url, state) = serve().await;
    let t = tempfile::tempdir().unwrap();
    let p = artifact(t.path());
    let e = upload(&request(&url, &p, Some("ddgz")), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("`tgz or ddtgz` artifact but filetype `ddgz`"),
        "{e}"
    );
    assert!(ApiKey::parse("only:two").is_err());
    let mut req = request(&url, &p, None);
    req.api_key = ApiKey::parse("CK:TK:WRONG").unwrap();
    let e = upload(&req, &mut |_| {}).await.unwrap_err();
    assert!(
        matches!(e, UploadError::Status { status: 401, .. }),
        "{e:?}"
    );
    assert!(!e.to_string().contains("WRONG"));
    assert_eq!(state.lock().unwrap().resources.len(), 0);
}
