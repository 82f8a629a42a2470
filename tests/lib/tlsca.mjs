// Test certificate authority made at test time with the `openssl` CLI.
//
//   const ca   = makeCA(dir, 'Bifrost Test CA');                  // RSA 2048 CA
//   const leaf = makeServerCert(dir, ca, { name: 'srv' });         // localhost + 127.0.0.1
//   const ec   = makeServerCert(dir, ca, { name: 'ec', keyType: 'ec' });
//   // leaf.key / leaf.cert are PEM strings; ca.certFile is the path for tls.ca_file
//
// Every file lands in `dir`; nothing touches the system trust store.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function openssl(args, cwd) {
  try {
    return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() || e.message}`);
  }
}

function genKey(file, keyType) {
  if (keyType === 'ec') {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
  } else {
    openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file]);
  }
}

/** A self-signed CA (basicConstraints CA:TRUE, keyCertSign). */
export function makeCA(dir, cn = 'Bifrost Test CA', { keyType = 'rsa', name = 'ca' } = {}) {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  genKey(keyFile, keyType);
  const cfg = join(dir, `${name}.cnf`);
  writeFileSync(cfg, [
    '[req]', 'distinguished_name=dn', 'x509_extensions=v3', 'prompt=no',
    '[dn]', `CN=${cn}`, 'O=Bifrost-C tests',
    '[v3]', 'basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier=hash', '',
  ].join('\n'));
  openssl(['req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', '30',
    '-config', cfg, '-out', certFile]);
  return { keyFile, certFile, cert: readFileSync(certFile, 'utf8'), dir, name };
}

/**
 * A server certificate signed by `ca`.
 * names: SAN entries, default DNS:localhost + IP:127.0.0.1.
 */
export function makeServerCert(dir, ca, {
  name = 'server', cn = 'localhost', keyType = 'rsa',
  san = ['DNS:localhost', 'IP:127.0.0.1'],
} = {}) {
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  genKey(keyFile, keyType);
  openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${cn}/O=Bifrost-C tests`, '-out', csrFile]);
  writeFileSync(extFile, [
    'basicConstraints=critical,CA:FALSE',
    `keyUsage=critical,digitalSignature${keyType === 'rsa' ? ',keyEncipherment' : ''}`,
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${san.join(',')}`,
    '',
  ].join('\n'));
  openssl(['x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile,
    '-CAcreateserial', '-days', '30', '-sha256', '-extfile', extFile, '-out', certFile]);
  return {
    keyFile, certFile,
    key: readFileSync(keyFile, 'utf8'),
    cert: readFileSync(certFile, 'utf8'),
  };
}
