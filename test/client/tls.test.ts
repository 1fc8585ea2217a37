/**
 * wss:// with a self-signed certificate made by `openssl` in a temporary directory: trusted
 * through `tls: { ca }`, accepted with `rejectUnauthorized: false`, refused otherwise.
 */

import { connect, isText } from '../../src/index.js'
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
