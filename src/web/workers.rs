//! The fixed pool of worker threads that answer requests.
//!
//! Connection threads only move bytes: they read a whole request, hand it here, and write the
//! answer back. Decoding, ingesting and rendering happen on these `--web.threads` workers, so
//! CPU use and per-thread decode buffers stay bounded however many connections are open, and
//! a slow client holds its own connection thread, never a worker. Workers also compress the
//! chunks of compressed pages that connection threads render (see [`crate::web::compress`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::base::allocator;
use crate::base::locks::lock;
use crate::web::compress::Task;
use crate::web::routes::{self, App, Reply, Request};

/// Work for a worker: a request, and where its answer goes (the request comes back too, so
/// that its connection can reuse the body buffer); or a task of a connection's, such as
/// compressing a chunk of the page it is sending.
enum Job {
    Answer {
        request: Request,
        answer: Sender<(Reply, Request)>,
    },
    Task(Task),
}

/// The way into the pool; cloned by every connection.
#[derive(Clone)]
pub struct Workers {
    jobs: SyncSender<Job>,
}

/// Where one connection waits for its answers.
pub struct AnswerSlot {
    sender: Sender<(Reply, Request)>,
    receiver: Receiver<(Reply, Request)>,
}

impl Default for AnswerSlot {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel();
        AnswerSlot { sender, receiver }
    }
}

impl Workers {
    /// Starts `count` workers. Requests beyond what they hold wait in a short queue, and the
    /// connections behind them wait in turn: the pool pushes back instead of buffering.
    pub fn start(count: usize, app: Arc<App>) -> Workers {
        let (jobs, queue) = mpsc::sync_channel::<Job>(count);
        let queue = Arc::new(Mutex::new(queue));
        for worker in 0..count {
            let (queue, app) = (Arc::clone(&queue), Arc::clone(&app));
            thread::Builder::new()
                .name(format!("worker-{worker}"))
                .spawn(move || work(&queue, &app))
                .expect("spawning a worker thread at startup");
        }
        Workers { jobs }
    }

    /// Answers `request` on a worker; `None` only if the pool is gone.
    pub fn answer(&self, request: Request, slot: &AnswerSlot) -> Option<(Reply, Request)> {
        let job = Job::Answer {
            request,
            answer: slot.sender.clone(),
        };
        self.jobs.send(job).ok()?;
        slot.receiver.recv().ok()
    }

    /// Runs `task` on a worker; on this thread if the pool is gone.
    pub fn offload(&self, task: Task) {
        if let Err(mpsc::SendError(Job::Task(task))) = self.jobs.send(Job::Task(task)) {
            task();
        }
    }
}

fn work(queue: &Mutex<Receiver<Job>>, app: &App) {
    // Workers make the new series, and live as long as the process (see `crate::base::allocator`).
    allocator::cache_this_thread();
    loop {
        let next = lock(queue).recv();
        let (request, answer) = match next {
            Ok(Job::Answer { request, answer }) => (request, answer),
            Ok(Job::Task(task)) => {
                // A task's panic is its own: the connection that waits for it sees it lost.
                let _ = catch_unwind(AssertUnwindSafe(task));
                continue;
            }
            Err(_) => return,
        };
        // `handle` turns a handler panic into a 500; this catches anything past it, so that
        // the worker lives on (the panic hook has logged it).
        let reply = catch_unwind(AssertUnwindSafe(|| routes::handle(app, &request)))
            .unwrap_or_else(|_| Reply::text(500, "internal error; see the server log"));
        let _ = answer.send((reply, request));
    }
}
