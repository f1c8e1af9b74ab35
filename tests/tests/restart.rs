//! Stopping and starting again: the port the engine served is free as soon as it has exited.

use tests::{echo_frame, Client, Engine, WAIT};

/// A restart can bind the port as soon as the engine has exited: each core waits for its
/// cancelled accept's last completion (which holds the listening socket) before it exits. Exiting
/// earlier left the port bound, and accepting, until the kernel tore the ring down: the engine
/// of the commit before failed this test in its second round (release build); a debug build is
/// slower and rarely shows it.
#[test]
fn the_port_is_free_as_soon_as_the_engine_exits() {
    for round in 0..5 {
        let mut engine = Engine::start(&["--cores", "2"]);
        let mut clients: Vec<Client> = (0..100).map(|_| engine.connect()).collect();
        for client in &mut clients {
            client.send(&echo_frame(b"hi").repeat(50));
        }
        for client in &mut clients {
            client.read_reply(WAIT);
        }
        drop(clients);
        engine.sigterm();
        assert!(
            engine.wait_exit(WAIT).success(),
            "round {round}: {}",
            engine.stderr()
        );
        let rebound = std::net::TcpListener::bind(engine.listen);
        assert!(
            rebound.is_ok(),
            "round {round}: {} still bound after exit: {rebound:?}",
            engine.listen
        );
    }
}
