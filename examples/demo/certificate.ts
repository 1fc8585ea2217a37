/**
 * `npm start -- --tls`: a self-signed certificate for 127.0.0.1, made by openssl at start (a
 * browser needs it accepted once, or Chromium's `--ignore-certificate-errors`).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

/** A key and certificate (PEM) for the demo's TLS. */
export interface DemoTls {
  key: string | Buffer
  cert: string | Buffer
}

/** A self-signed certificate for 127.0.0.1 and localhost, made by openssl (valid 30 days). */
export async function selfSignedCertificate (): Promise<DemoTls> {
  const dir = await mkdtemp(join(tmpdir(), 'wspipe-demo-'))
  try {
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '30',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')
    ], { timeout: 30_000 })
    return { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
