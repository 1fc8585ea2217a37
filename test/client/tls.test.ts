/**
 * wss:// with a self-signed certificate made by `openssl` in a temporary directory: trusted
 * through `tls: { ca }`, accepted with `rejectUnauthorized: false`, refused otherwise.
 */

import net from 'node:net'
import tls from 'node:tls'
import { connect, isText } from '../../src/index.js'
import { acceptFor } from '../../src/crypto.js'
import { peerTest } from '../peers.js'
import { decoder, echo, makeCertificate, startOurServer, startWssServer, take, type Certificate } from './helpers.js'

const test = peerTest('openssl')

let cert: Certificate
test.before(() => {
  cert = makeCertificate()
})

test('wss:// to our server, trusting its certificate through tls.ca', async (t) => {
  const peer = await startOurServer({ echo }, {}, cert)
  try {
    t.regex(peer.url, /^wss:\/\//)
    const conn = await connect(peer.url, { protocols: ['echo'], tls: { ca: cert.cert }, heartbeat: false })
    t.is(conn.protocol, 'echo')
    const [, [m]] = await Promise.all([conn.sink(['secret']), take(conn.source, 1)])
    t.true(isText(m))
    t.is(decoder.decode(m), 'secret')
    conn.close()
    t.deepEqual(await conn.closed, { code: 1000, reason: '', wasClean: true })
  } finally {
    await peer.close()
  }
})

test('wss:// to a ws server with rejectUnauthorized: false', async (t) => {
  const peer = await startWssServer(cert)
  try {
    const conn = await connect(peer.url, { tls: { rejectUnauthorized: false }, heartbeat: false })
    const big = new Uint8Array(1024 * 1024).fill(3)
    const [, [m]] = await Promise.all([conn.sink([big]), take(conn.source, 1)])
    t.is(m.length, big.length)
    t.false(isText(m))
    conn.close()
    t.is((await conn.closed).code, 1000)
  } finally {
    await peer.close()
  }
})

test('https:// maps to wss://', async (t) => {
  const peer = await startOurServer({ '': echo }, {}, cert)
  try {
    const conn = await connect(peer.url.replace('wss://', 'https://'), { tls: { ca: cert.cert }, heartbeat: false })
    conn.close()
    t.is((await conn.closed).code, 1000)
  } finally {
    await peer.close()
  }
})

test('wss:// refuses an untrusted self-signed certificate', async (t) => {
  const peer = await startOurServer({ '': echo }, {}, cert)
  try {
    const err = await t.throwsAsync(connect(peer.url, { heartbeat: false }))
    t.regex((err as NodeJS.ErrnoException).code ?? '', /SELF_SIGNED/)
  } finally {
    await peer.close()
  }
})

test('wss:// refuses a certificate for another name', async (t) => {
  const peer = await startOurServer({ '': echo }, {}, cert)
  try {
    const err = await t.throwsAsync(connect(peer.url, { tls: { ca: cert.cert, servername: 'example.com' }, heartbeat: false }))
    t.is((err as NodeJS.ErrnoException).code, 'ERR_TLS_CERT_ALTNAME_INVALID')
  } finally {
    await peer.close()
  }
})

test('tls options are ignored for ws://', async (t) => {
  const peer = await startOurServer({ '': echo })
  try {
    const conn = await connect(peer.url, { tls: { ca: cert.cert }, heartbeat: false })
    conn.close()
    t.is((await conn.closed).code, 1000)
  } finally {
    await peer.close()
  }
})

test('wss:// a hostile server whose TLS record does not decrypt after the 101: the client\'s connection ends (1006) at once, even with the heartbeat off', async (t) => {
  // A TLS server by hand: it answers the upgrade, then writes a record no key made under TLS.
  const raws = new Set<net.Socket>()
  const server = net.createServer((raw) => {
    raws.add(raw)
    raw.on('error', () => {})
    const secure = new tls.TLSSocket(raw, { isServer: true, key: cert.key, cert: cert.cert })
    secure.on('error', () => {})
    let request = ''
    secure.on('data', (chunk: Buffer) => {
      request += chunk.toString('latin1')
      const key = /sec-websocket-key: *(\S+)/i.exec(request)?.[1]
      if (!request.includes('\r\n\r\n') || key === undefined) return
      request = ''
      secure.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`, () => {
        setTimeout(() => raw.write(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5])), 50)
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const raw of raws) raw.destroy()
    server.close()
  })
  const { port } = server.address() as net.AddressInfo
  const conn = await connect(`wss://127.0.0.1:${port}`, { tls: { ca: cert.cert }, heartbeat: false })
  const closed = await Promise.race([conn.closed, new Promise<'open'>((resolve) => setTimeout(resolve, 5000, 'open'))])
  t.deepEqual(closed, { code: 1006, reason: '', wasClean: false })
})
