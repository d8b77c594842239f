//! Replays the `cli_render` fuzz target's saved inputs (`fuzz/corpus/cli_render/`) under
//! plain `cargo test`, on stable and without libFuzzer, and adds the oracle the fuzzer cannot
//! run fast: every C header the command writes for them is compiled with `cc -fsyntax-only`.
//! New crashes in `fuzz/artifacts/cli_render/` replay with `--ignored artifacts`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use shmstore::{Shm, ShmQueue};
use shmstore_cli::fuzzing::{check_c_header, render_arbitrary_descriptor};

/// The saved inputs in `fuzz/<dir>/cli_render/`, sorted.
fn inputs(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir)
        .join("cli_render");
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .map(|e| e.expect("readable directory").path())
                .filter(|p| p.is_file())
                .map(|p| {
                    let bytes = std::fs::read(&p).expect("readable input");
                    (p, bytes)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `cc -std=c11 -Wall -Werror -fsyntax-only` on a file that includes `header`.
fn compiles(header: &str) -> Result<(), String> {
    let dir = TempDir::new("fuzz-corpus");
    syntax_check(dir.path(), header, INCLUDES_REGION_H, &[])
}

fn replay(inputs: Vec<(PathBuf, Vec<u8>)>) -> usize {
    let mut headers = 0;
    for (path, bytes) in inputs {
        eprintln!("cli_render: {}", path.display());
        if let Some(header) = render_arbitrary_descriptor(&bytes) {
            compiles(&header).unwrap_or_else(|e| {
                panic!(
                    "{}: the header does not compile:\n{e}\n{header}",
                    path.display()
                )
            });
            headers += 1;
        }
    }
    headers
}

#[test]
fn corpus() {
    let corpus = inputs("corpus");
    assert!(!corpus.is_empty(), "no seed inputs for `cli_render`");
    // The seeds are real layouts: each gives a header.
    let seeds = corpus
        .iter()
        .filter(|(p, _)| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
        })
        .count();
    assert!(replay(corpus) >= seeds);
}

/// The crashes in `fuzz/artifacts/cli_render/` (not committed), to check a fix.
#[test]
#[ignore = "replays unfixed crashes"]
fn artifacts() {
    replay(inputs("artifacts"));
}

/// The oracle accepts what the command writes for real regions (so that it is not refusing
/// everything): values, in place, queues, primitives, arrays, packed structs, field kinds.
#[test]
fn the_oracle_accepts_the_headers_of_real_regions() {
    let (sample_name, _sample_name) = region("oracle-sample");
    let (queue, _queue) = region("oracle-queue");
    let (primitive, _primitive) = region("oracle-u64");
    let (array, _array) = region("oracle-array");
    let _a = Shm::<Sample>::create(&sample_name, sample()).unwrap();
    let _b = ShmQueue::<Wheel, 8>::create(&queue).unwrap();
    let _c = Shm::<u64>::create(&primitive, 42).unwrap();
    let _d = Shm::<[u32; 4]>::create(&array, [1, 2, 3, 4]).unwrap();
    // Field kinds: typed accessors and a C enum.
    let (kinds, _kinds) = region("oracle-kinds");
    let _e = Shm::<shmstore_tests::ServiceConfig>::create(
        &kinds,
        shmstore_tests::ServiceConfig::example(),
    )
    .unwrap();
    for name in [&sample_name, &queue, &primitive, &array, &kinds] {
        let ran = run(&["header", name]);
        ran.ok();
        check_c_header(&ran.stdout).unwrap_or_else(|why| panic!("{name}: {why}"));
    }
}
