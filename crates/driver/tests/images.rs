//! Image export, load and tag (what federation uses to move an app's image to a partner)
//! against a real runtime: Podman's Docker-compatible API by default
//! (`unix:///run/podman/podman.sock`), or the endpoint in `OP_TEST_DOCKER_ENDPOINT`.
//!
//! Needs the sample image `localhost/op-sample-app:latest`: run `scripts/build-images.sh`
//! first. Without it (or without a runtime) these tests fail; they never skip.
//!
//! The shared sample tag is never removed or reloaded: each test works on its own tags
//! `localhost/op-test-fed/<random>:...`, removed at the end (also when the test fails).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::image::RemoveImageOptions;
use op_driver::docker::DockerDriver;
use op_driver::{Driver, DriverError};

const IMAGE: &str = "localhost/op-sample-app:latest";

fn endpoint() -> String {
    std::env::var("OP_TEST_DOCKER_ENDPOINT").unwrap_or_else(|_| "unix:///run/podman/podman.sock".into())
}

/// A short random hex suffix, different per call and per process.
fn suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// A driver for the test runtime, which must answer and hold the sample image.
async fn driver() -> DockerDriver {
    let ep = endpoint();
    let d = DockerDriver::connect(&ep)
        .unwrap_or_else(|e| panic!("cannot connect to {ep}: {e} (is the runtime up? scripts/setup-runtime.sh)"));
    if let Err(e) = d.ping().await {
        panic!("the runtime at {ep} does not answer: {e} (scripts/setup-runtime.sh starts it)");
    }
    match d.image_exists(IMAGE).await {
        Ok(true) => {}
        Ok(false) => panic!("the image {IMAGE} is missing on {ep}: run scripts/build-images.sh first"),
        Err(e) => panic!("cannot check for {IMAGE} on {ep}: {e}"),
    }
    d
}

/// bollard directly, for what the driver does not expose (removing a tag).
fn raw_docker() -> bollard::Docker {
    let ep = endpoint();
    let r = match ep.strip_prefix("unix://") {
        Some(path) => bollard::Docker::connect_with_unix(path, 60, bollard::API_DEFAULT_VERSION),
        None => bollard::Docker::connect_with_http(&ep, 60, bollard::API_DEFAULT_VERSION),
    };
    r.expect("raw bollard client")
}

/// Removes one tag (never the image's layers, never a container's image: `noprune`, no force).
async fn untag(name: &str) -> Result<(), bollard::errors::Error> {
    let opts = RemoveImageOptions { force: false, noprune: true };
    match raw_docker().remove_image(name, Some(opts), None).await {
        Ok(_) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the named tags when dropped, also when the test panics. Drop cannot await, so the
/// removal runs on its own thread and runtime.
struct Untag(Vec<String>);

impl Drop for Untag {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                for n in names {
                    if let Err(e) = untag(&n).await {
                        eprintln!("cleanup: could not remove the tag {n}: {e}");
                    }
                }
            });
        });
        let _ = done.join();
    }
}

/// Whether `tar` is a tar archive (ustar magic in the first header) holding `manifest.json`,
/// as `docker save` writes it.
fn looks_like_docker_save(tar: &[u8]) -> bool {
    tar.len() > 1024 && &tar[257..262] == b"ustar" && tar.windows(13).any(|w| w == b"manifest.json")
}

/// Tag a unique name, export it, drop the tag, load the archive: the name is back, and the
/// runtime reported it. Also tags idempotently and with an implicit `latest`.
#[tokio::test]
async fn export_then_load_restores_the_name() {
    let d = driver().await;
    let unique = suffix();
    let name = format!("localhost/op-test-fed/{unique}:1");
    let bare = format!("localhost/op-test-fed/{unique}");
    let _cleanup = Untag(vec![name.clone(), format!("{bare}:latest")]);

    assert!(!d.image_exists(&name).await.unwrap(), "a fresh name must not exist yet");
    d.tag_image(IMAGE, &name).await.unwrap();
    d.tag_image(IMAGE, &name).await.expect("tagging again is not an error");
    assert!(d.image_exists(&name).await.unwrap(), "tag_image must create {name}");
    d.tag_image(&name, &bare).await.unwrap();
    assert!(d.image_exists(&format!("{bare}:latest")).await.unwrap(), "a target without a tag means :latest");

    let tar = d.export_image(&name).await.unwrap();
    assert!(looks_like_docker_save(&tar), "export is not a docker-save tar ({} bytes)", tar.len());
    assert!(tar.len() < 64 * 1024 * 1024, "the sample image exported as {} bytes", tar.len());

    untag(&name).await.unwrap();
    assert!(!d.image_exists(&name).await.unwrap(), "the tag should be gone before the load");
    let refs = d.load_image(tar).await.unwrap();
    assert!(refs.contains(&name), "load reported {refs:?}, not {name}");
    assert!(d.image_exists(&name).await.unwrap(), "load must bring {name} back");
    assert!(d.image_exists(IMAGE).await.unwrap(), "the sample tag must be untouched");
}

/// Bytes that are no image archive: the runtime's refusal, as a Runtime error with its message.
#[tokio::test]
async fn loading_garbage_is_a_runtime_error() {
    let d = driver().await;
    for (what, bytes) in [("text", b"not an image archive".to_vec()), ("an empty tar", vec![0u8; 1024])] {
        match d.load_image(bytes).await {
            Err(DriverError::Runtime(msg)) => assert!(!msg.trim().is_empty(), "{what}: empty message"),
            other => panic!("loading {what} gave {other:?}, not a Runtime error"),
        }
    }
}

/// A missing image cannot be exported or tagged: ImageNotFound, naming it.
#[tokio::test]
async fn missing_images_are_image_not_found() {
    let d = driver().await;
    let missing = format!("localhost/op-test-fed/missing-{}:1", suffix());
    match d.export_image(&missing).await {
        Err(DriverError::ImageNotFound(n)) => assert_eq!(n, missing),
        other => panic!("exporting {missing} gave {:?}, not ImageNotFound", other.map(|b| b.len())),
    }
    let target = format!("localhost/op-test-fed/never-{}:1", suffix());
    let _cleanup = Untag(vec![target.clone()]);
    match d.tag_image(&missing, &target).await {
        Err(DriverError::ImageNotFound(n)) => assert_eq!(n, missing),
        other => panic!("tagging {missing} gave {other:?}, not ImageNotFound"),
    }
    assert!(!d.image_exists(&target).await.unwrap());
}
