//! What `tokio_service` and `wait_set` share (included by both): a service's configuration
//! region and job queue, the two processes that feed them, and the checks of what the service
//! saw.

use std::process::{Child, Command};
use std::time::Duration;

use shmstore::{Shm, ShmQueue, ShmType};

pub type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// The service's configuration, published by the `config-daemon` process.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Config {
    /// How many workers the service should run.
    pub workers: u32,
    /// How much each job is scaled by.
    pub factor: u32,
}

/// A job, pushed by the `producer` process.
#[derive(ShmType, Clone, Copy, Debug)]
#[repr(C)]
pub struct Job {
    pub id: u64,
    pub payload: u64,
}

/// The job queue: 16 slots, so that the producer meets a full queue now and then.
pub type Jobs = ShmQueue<Job, 16>;

/// How many configurations the daemon publishes, and how many jobs the producer pushes.
pub const CONFIG_UPDATES: u32 = 5;
pub const JOBS: u64 = 200;
/// The configuration the service starts with, and the one the daemon publishes last.
pub const FIRST_CONFIG: Config = Config {
    workers: 1,
    factor: 1,
};
pub const LAST_CONFIG: Config = Config {
    workers: 1 + CONFIG_UPDATES,
    factor: 10 * (1 + CONFIG_UPDATES),
};
/// Longer than the feeders ever take: a service that waited this long stops with an error
/// instead of hanging (a feeder died, say).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The regions of one run, removed when dropped (the feeders only open them).
pub struct Regions {
    pub config: Shm<Config>,
    pub jobs: Jobs,
    pub config_name: String,
    pub jobs_name: String,
}

impl Regions {
    /// Creates both regions under names of this process (`program` tells runs apart).
    pub fn create(program: &str) -> Result<Regions> {
        let config_name = format!("shmstore-example-{program}-{}.config", std::process::id());
        let jobs_name = format!("shmstore-example-{program}-{}.jobs", std::process::id());
        let config = Shm::<Config>::options()
            .unlink_on_drop(true)
            .create(&config_name, FIRST_CONFIG)?;
        let jobs = Jobs::options().unlink_on_drop(true).create(&jobs_name)?;
        Ok(Regions {
            config,
            jobs,
            config_name,
            jobs_name,
        })
    }

    /// Starts the two feeder processes (this program again, with a role).
    pub fn start_feeders(&self) -> Result<Feeders> {
        let start = |role: &str, names: &[&str]| -> Result<Child> {
            Ok(Command::new(std::env::current_exe()?)
                .arg(role)
                .args(names)
                .spawn()?)
        };
        let mut feeders = Feeders(Vec::new());
        feeders
            .0
            .push(start("config-daemon", &[&self.config_name])?);
        feeders
            .0
            .push(start("producer", &[&self.jobs_name, &self.config_name])?);
        Ok(feeders)
    }
}

/// The feeder processes, killed and reaped on every path (a failed check included).
pub struct Feeders(Vec<Child>);

impl Feeders {
    /// Waits for both; an error unless both succeeded.
    pub fn finish(mut self) -> Result<()> {
        for mut child in std::mem::take(&mut self.0) {
            let status = child.wait()?;
            if !status.success() {
                return Err(format!("a feeder failed: {status}").into());
            }
        }
        Ok(())
    }
}

impl Drop for Feeders {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a feeder role if `role` names one (its regions' names follow it in `names`): `Some`
/// with its outcome, `None` otherwise.
pub fn feeder_role(role: &str, names: &[String]) -> Option<Result<()>> {
    let name = |i: usize| names.get(i).map_or("", String::as_str);
    match role {
        "config-daemon" => Some(config_daemon(name(0))),
        "producer" => Some(producer(name(0), name(1))),
        _ => None,
    }
}

/// Role `config-daemon`: publishes `CONFIG_UPDATES` configurations, 40 ms apart.
fn config_daemon(name: &str) -> Result<()> {
    let config = Shm::<Config>::open(name)?;
    for update in 1..=CONFIG_UPDATES {
        std::thread::sleep(Duration::from_millis(40));
        *config.lock().map_err(|e| e.to_string())? = Config {
            workers: 1 + update,
            factor: 10 * (1 + update),
        };
        println!("[config-daemon] published config {update}");
    }
    Ok(())
}

/// Role `producer`: pushes `JOBS` jobs, in bursts, waits for the daemon's last
/// configuration, then closes the queue: the service's signal to shut down once it has taken
/// what is left (so it has the last configuration by then).
fn producer(jobs_name: &str, config_name: &str) -> Result<()> {
    let jobs = Jobs::open(jobs_name)?;
    let config = Shm::<Config>::open(config_name)?;
    for id in 0..JOBS {
        // A blocking push: it sleeps while the queue is full.
        jobs.push(Job {
            id,
            payload: id * 3,
        })?;
        if id % 20 == 19 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut seen = config.version();
    while config.read() != LAST_CONFIG {
        seen = config.wait_for_change(seen, Some(PATIENCE))?;
    }
    jobs.close();
    println!("[producer] pushed {JOBS} jobs, closed the queue");
    Ok(())
}

/// What a service saw, checked against what the feeders sent.
#[derive(Default)]
pub struct Seen {
    /// The ids of the jobs handled, in order.
    pub jobs: Vec<u64>,
    /// How many changes of the configuration the service woke for.
    pub config_changes: u32,
}

impl Seen {
    /// Handles one job under `config` (here: checks and records it).
    pub fn job(&mut self, job: Job, config: &Config) -> Result<()> {
        if job.payload != job.id * 3 {
            return Err(format!("job {} arrived with payload {}", job.id, job.payload).into());
        }
        let _work = job.payload * u64::from(config.factor);
        self.jobs.push(job.id);
        Ok(())
    }

    /// Every job once, in order; at least one configuration change seen (changes published
    /// back to back may be seen as one: a wait reports the newest version); the last one read.
    pub fn check(&self, service: &str, last_config: &Config) -> Result<()> {
        let expected: Vec<u64> = (0..JOBS).collect();
        if self.jobs != expected {
            return Err(format!(
                "{service}: jobs arrived as {:?}, not 0..{JOBS} in order",
                self.jobs
            )
            .into());
        }
        if self.config_changes == 0 || self.config_changes > CONFIG_UPDATES {
            return Err(format!(
                "{service}: woke for {} configuration changes, not 1..={CONFIG_UPDATES}",
                self.config_changes
            )
            .into());
        }
        if *last_config != LAST_CONFIG {
            return Err(format!("{service}: ended on {last_config:?}, not {LAST_CONFIG:?}").into());
        }
        println!(
            "[{service}] ok: {} jobs in order, {} configuration wake-ups for {CONFIG_UPDATES} \
             updates, last config {last_config:?}",
            self.jobs.len(),
            self.config_changes
        );
        Ok(())
    }
}

/// Whether the program, started without a role of its own, should run its whole
/// demonstration: no argument, or what a test runner passes (`--quiet`, `--nocapture`, or a
/// filter that selects `test_name`). `cargo test -- --list` gets the one test listed.
pub fn runs_as_demo(first: Option<&str>, test_name: &str) -> bool {
    if std::env::args().any(|a| a == "--list") {
        println!("{test_name}: test");
        return false;
    }
    match first {
        None => true,
        Some(word) => word.starts_with('-') || test_name.contains(word),
    }
}
