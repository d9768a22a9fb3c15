//! The sockets the server listens and talks on: TCP, or a Unix socket (`unix:/path`), which a
//! Prometheus in the same pod scrapes through a shared volume (its `__unix_socket__` label).
//! Every endpoint, basic auth and TLS work the same on both: a connection is a byte stream
//! either way.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// What `--web.listen-address` names a Unix socket with.
const UNIX_PREFIX: &str = "unix:";

/// One connection's socket.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            Stream::Unix(s) => s.set_write_timeout(timeout),
        }
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(nonblocking),
            Stream::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Answers go out as soon as they are written (TCP's Nagle delay off); a Unix socket has
    /// none.
    pub fn set_nodelay(&self) {
        if let Stream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }
}

/// A Unix socket's file, which the server removes when it stops cleanly: only if it is still
/// the socket it made (the same device and inode), not a file another process has put there
/// since.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    inode: (u64, u64),
}

impl SocketFile {
    pub fn remove(&self) {
        if let Ok(metadata) = std::fs::symlink_metadata(&self.path) {
            if metadata.file_type().is_socket() && (metadata.dev(), metadata.ino()) == self.inode {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Where a listener listens, as a user reads it: `host:port` as bound (with the port chosen
/// for `:0`), or `unix:/path`.
pub fn describe(listener: &Listener, asked: &str) -> String {
    match listener {
        Listener::Tcp(l) => l
            .local_addr()
            .map_or_else(|_| asked.to_owned(), |a| a.to_string()),
        Listener::Unix(_) => asked.to_owned(),
    }
}

/// Listens on `address`: `unix:/path` is a Unix socket of file mode `mode`; `:PORT` means every
/// interface, IPv6 and IPv4 where the host has IPv6; anything else is `host:port`.
pub fn bind(address: &str, mode: u32) -> Result<(Listener, Option<SocketFile>), String> {
    if let Some(path) = address.strip_prefix(UNIX_PREFIX) {
        let (listener, file) = bind_unix(Path::new(path), mode)?;
        return Ok((Listener::Unix(listener), Some(file)));
    }
    bind_tcp(address).map(|listener| (Listener::Tcp(listener), None))
}

fn bind_tcp(address: &str) -> Result<TcpListener, String> {
    let candidates: Vec<SocketAddr> = match address.strip_prefix(':') {
        Some(port) => {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("invalid port in {address:?}"))?;
            vec![
                SocketAddr::from(([0u16; 8], port)),
                SocketAddr::from(([0u8; 4], port)),
            ]
        }
        None => address
            .to_socket_addrs()
            .map_err(|e| format!("{address:?}: {e}"))?
            .collect(),
    };
    let mut last_error = format!("{address:?} names no address");
    for candidate in candidates {
        match listen_tcp(candidate) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = format!("{candidate}: {e}"),
        }
    }
    Err(last_error)
}

fn listen_tcp(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    if address.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Binds a Unix socket at `path`. A socket file left by a process that is gone (a crash, a
/// kill) is replaced, as nothing answers on it; one a live server answers on is not, nor is
/// a file that is not a socket.
fn bind_unix(path: &Path, mode: u32) -> Result<(UnixListener, SocketFile), String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Err("unix: needs a path, as in unix:/run/k8s_exporter.sock".into());
    }
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(format!("{shown}: exists and is not a socket"));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(format!("{shown}: a server is listening on it already"));
        }
        std::fs::remove_file(path).map_err(|e| format!("{shown}: stale socket: {e}"))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("{shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{shown}: {e}"))?;
    let metadata = std::fs::symlink_metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    let file = SocketFile {
        path: path.to_owned(),
        inode: (metadata.dev(), metadata.ino()),
    };
    Ok((listener, file))
}

/// A file mode written in octal, as `chmod` takes it (`0660`, `660`).
pub fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not a file mode such as 0660"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("socket-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_unix_socket_is_made_with_its_mode_and_removed_only_while_ours() {
        let dir = scratch_dir("mode");
        let path = dir.join("k.sock");
        let address = format!("unix:{}", path.display());
        let (listener, file) = bind(&address, 0o640).unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        assert!(metadata.file_type().is_socket());
        assert_eq!(metadata.permissions().mode() & 0o777, 0o640);
        assert_eq!(describe(&listener, &address), address);
        // Another file put in its place is left alone.
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not ours").unwrap();
        file.unwrap().remove();
        assert!(path.exists());
        std::fs::remove_file(&path).unwrap();
        let (_listener, file) = bind(&address, 0o660).unwrap();
        file.unwrap().remove();
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_socket_is_replaced_but_not_a_live_one_nor_another_file() {
        let dir = scratch_dir("stale");
        let path = dir.join("k.sock");
        let address = format!("unix:{}", path.display());
        // Bound and dropped: the file stays and nothing answers on it, as after a crash.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (listener, _) = bind(&address, 0o660).unwrap();
        let error = bind(&address, 0o660).unwrap_err();
        assert!(error.contains("listening on it already"), "{error}");
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"data").unwrap();
        let error = bind(&address, 0o660).unwrap_err();
        assert!(error.contains("not a socket"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        assert!(bind("unix:", 0o660).is_err());
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("rw").is_err());
    }
}
