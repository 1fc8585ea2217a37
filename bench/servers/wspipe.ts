// wspipe echo server: the handler pipes each connection's source into its own sink; --tls for
// wss:// over HTTP/1.1 and HTTP/2 on one port (the bench's --transports).
// Default options except maxMessageSize, raised to the 64 MiB the other servers get;
// --defaults (the slow-reader run) uses no options at all. Clients offering `echo-stream`
// (bench/stream.ts) get the demo's streaming echo: stream mode, no message size limit.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { announce } from './control.js'

// WSPIPE_SRC: another checkout's src/index.ts (bench/echo.ts --baseline), the same harness over it
const { WebSocketServer } = await import(process.env.WSPIPE_SRC ?? '../../src/index.js') as typeof import('../../src/index.js')

const server = new WebSocketServer(process.argv.includes('--defaults') ? {} : { maxMessageSize: 64 * 1024 * 1024 })
server.register('', ({ source, sink }) => sink(source))
server.register('echo-stream', ({ source, sink }) => sink(source), { messages: 'stream', maxMessageSize: Infinity })
// --tls: wss:// with HTTP/2 (RFC 8441) beside HTTP/1.1 on the port, a self-signed certificate made now.
const tls = process.argv.includes('--tls') ? selfSigned() : undefined
const addr = await server.listen({ port: 0, host: '127.0.0.1', tls })
announce({ port: addr.port })

function selfSigned (): { key: Buffer, cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'wspipe-bench-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
