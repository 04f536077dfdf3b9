//! Shared by the crate's service tests.

use observability::fuzz::{FuzzOptions, FuzzReport, fuzz_service};
use observability::rpc::{Net, RpcServer, ServerHandle};

/// Serves `server` on loopback and runs the hostile client against
/// `service` on it; panics with the first imprecise answer. The server
/// keeps running, so the test can check it still works.
pub async fn fuzz_on_loopback(
    server: RpcServer,
    descriptor_set: &'static [u8],
    service: &str,
) -> (ServerHandle, FuzzReport) {
    let server = server
        .bind(Net::Tcp, ([127, 0, 0, 1], 0).into())
        .await
        .expect("binds")
        .spawn();
    let options = FuzzOptions {
        random_messages: 24,
        ..FuzzOptions::default()
    };
    let report = fuzz_service(server.uri(), descriptor_set, service, &options)
        .await
        .unwrap_or_else(|failure| panic!("{service}: {failure}"));
    assert!(report.calls > 20, "{report:?}");
    (server, report)
}
