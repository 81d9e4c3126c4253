//! Self-signed certificates for the TLS servers of the suites: a throwaway certificate
//! authority and a server certificate it signs for `localhost` and `127.0.0.1`, made with
//! rcgen (ring) for each server, in that server's own directory.

use std::{
    fs::OpenOptions,
    io::Write,
    os::unix::fs::{OpenOptionsExt, chown},
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::{Result, servers::binaries::Account};

/// The names the server certificate is valid for: the loopback addresses the servers listen
/// on, so clients can check the host name (`sslmode=verify-full`, `rediss://127.0.0.1`).
const SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// The files of a server's TLS setup, in the server's directory.
#[derive(Clone, Debug)]
pub(crate) struct TlsFiles {
    /// The certificate authority's certificate (PEM): what clients trust.
    pub(crate) ca: PathBuf,
    /// The server's certificate (PEM), signed by the authority.
    pub(crate) cert: PathBuf,
    /// The server's private key (PKCS#8 PEM), readable by its owner only.
    pub(crate) key: PathBuf,
}

impl TlsFiles {
    /// Makes a fresh authority and server certificate and writes them as `tls-ca.pem`,
    /// `tls-server.pem` and `tls-server.key` into `dir`, owned by `owner` when given (a server
    /// that runs as another user must own its key: PostgreSQL refuses a key others can read).
    pub(crate) fn create(dir: &Path, owner: Option<&Account>) -> Result<Self> {
        let (ca_pem, cert_pem, key_pem) =
            generate().map_err(|err| format!("cannot make test certificates: {err}"))?;
        let files = Self {
            ca: dir.join("tls-ca.pem"),
            cert: dir.join("tls-server.pem"),
            key: dir.join("tls-server.key"),
        };
        for (path, text, mode) in [
            (&files.ca, &ca_pem, 0o644),
            (&files.cert, &cert_pem, 0o644),
            (&files.key, &key_pem, 0o600),
        ] {
            write(path, text, mode, owner)?;
        }
        Ok(files)
    }
}

/// A new authority and a server certificate it signs: `(ca, cert, key)`, all PEM.
fn generate() -> Result<(String, String, String), rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "stats test certificate authority");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let names: Vec<String> = SERVER_NAMES.iter().map(|&name| name.to_owned()).collect();
    let mut server = CertificateParams::new(names)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "stats test server");
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;
    Ok((ca_cert.pem(), server_cert.pem(), server_key.serialize_pem()))
}

/// Writes `text` to a new file at `path` with `mode`, owned by `owner` when given.
fn write(path: &Path, text: &str, mode: u32, owner: Option<&Account>) -> Result {
    let shown = path.display();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|err| format!("cannot create {shown}: {err}"))?;
    file.write_all(text.as_bytes())
        .map_err(|err| format!("cannot write {shown}: {err}"))?;
    if let Some(owner) = owner {
        chown(path, Some(owner.uid), Some(owner.gid))
            .map_err(|err| format!("cannot give {shown} to the user {}: {err}", owner.name))?;
    }
    Ok(())
}

/// Reads a file made by [`TlsFiles::create`] (for the tests of this module).
#[cfg(test)]
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::servers::TempDir;

    #[test]
    fn files_hold_a_ca_a_certificate_and_a_private_key() {
        let dir = TempDir::new("tls-test").unwrap();
        let files = TlsFiles::create(dir.path(), None).unwrap();
        assert!(read(&files.ca).starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(read(&files.cert).starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(read(&files.key).starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(read(&files.ca), read(&files.cert));
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Each call makes a new authority.
        let other = TempDir::new("tls-test").unwrap();
        let again = TlsFiles::create(other.path(), None).unwrap();
        assert_ne!(read(&files.ca), read(&again.ca));
    }
}
