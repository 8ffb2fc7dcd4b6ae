//! Your own Projects Manager (one project), served by `pekat_proto::server`, called by `Client`.
use pekat_proto::server::{ServerBuilder, Service};
use pekat_proto::{Client, Command, ProjectState, Request, Response};
use std::{net::SocketAddr, sync::Mutex, sync::PoisonError};

const PROJECT: &str = r"C:\Projects\Line 1";

struct OneProject(Mutex<ProjectState>);

impl Service for OneProject {
    type Request = Request;
    type Response = Response;

    async fn call(&self, _peer: SocketAddr, request: Request) -> Response {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (next, answer) = match (request.path == PROJECT, request.command) {
            (false, _) => return Response::NotFound,
            (true, Command::Status) => return Response::Status(*state),
            (true, Command::Start) => (ProjectState::Running, Response::Done),
            (true, Command::Stop) => (ProjectState::Stopped, Response::Done),
            (true, Command::Switch) => (ProjectState::Running, Response::Success),
        };
        *state = next;
        answer
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = OneProject(Mutex::new(ProjectState::Stopped));
    let listen = "127.0.0.1:0".parse()?;
    let server = ServerBuilder::new().listen(listen).serve(device).await?;
    let client = Client::builder(server.local_addr().to_string()).build();
    client.start(PROJECT).await?;
    assert_eq!(client.status(PROJECT).await?, ProjectState::Running);
    println!("{PROJECT} is running on {}", server.local_addr());
    server.shutdown().await;
    Ok(())
}
