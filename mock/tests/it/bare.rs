//! The bare handler answers what the driver's preflight and a blocking run need.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::test]
async fn the_bare_handler_answers_runs_and_parameters() {
    let (addr, task) = mock::bare::serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let run = http::Request::post(format!("http://{addr}/v1/workflows/run")).body(Full::new(Bytes::from_static(b"{}"))).unwrap();
    let response = client.request(run).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), mock::bare::RUN_ANSWER.as_bytes());
    let parameters = http::Request::get(format!("http://{addr}/v1/parameters")).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(client.request(parameters).await.unwrap().status(), 200);
    task.abort();
}
