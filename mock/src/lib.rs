//! flowbench's stand-in services, which depend on neither the server nor the
//! driver: the OpenAI-compatible mock LLM (`llm`, scripted timing and
//! faults) and the bare axum handler (`bare`, the yardstick for the server's
//! Start→End cost). `fixtures` names the workspace's fixture apps, which
//! every stack (in-process, child process, tests, benches) serves.

pub mod bare;
pub mod fixtures;
pub mod llm;

pub use fixtures::workspace_root;
pub use llm::{Fault, MockLlm, Reply, Script};

/// The accept queue of every listener flowbench opens: tokio's 1,024
/// overflows when thousands of streams open at once.
pub const LISTEN_BACKLOG: u32 = 8192;

/// A listener on `addr` with [`LISTEN_BACKLOG`].
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
