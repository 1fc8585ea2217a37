/**
 * connect() against three echo servers: `ws`, Python's `websockets`, and our own
 * WebSocketServer. Each case runs once per server, so the client is checked against two
 * independent implementations as well as ours.
 */

import { randomBytes } from 'node:crypto'
import test, { type ExecutionContext } from 'ava'
import { connect, isText, type Connection } from '../../src/index.js'
import { peerTest, type Peer as SystemPeer } from '../peers.js'
import { decoder, echo, sha256, startOurServer, startPythonServer, startWsServer, take, withPeer, type Peer } from './helpers.js'

const SERVERS: Record<string, () => Promise<Peer>> = {
  ws: () => startWsServer(),
  'python websockets': () => startPythonServer(),
  wspipe: () => startOurServer({ '': echo })
}

/** The system package each server needs beyond `npm install`. */
const NEEDS: Record<string, SystemPeer[]> = { 'python websockets': ['python3-websockets'] }

/** Run `body` with a client connected to a fresh `server`; closes both afterwards. */
async function withEcho (server: string, body: (conn: Connection) => Promise<void>): Promise<void> {
  await withPeer(await SERVERS[server](), body, { maxMessageSize: 8 * 1024 * 1024 })
}

/** Send `messages`, read as many back. */
async function roundTrip (conn: Connection, messages: Array<string | Uint8Array>): Promise<Uint8Array[]> {
  const [, received] = await Promise.all([conn.sink(messages), take(conn.source, messages.length)])
  return received
}

for (const server of Object.keys(SERVERS)) {
  const test = peerTest(...(NEEDS[server] ?? []))
  test(`${server}: a string goes as text and comes back as text`, async (t) => {
    await withEcho(server, async (conn) => {
      const [m] = await roundTrip(conn, ['hello, wörld ✓'])
      t.true(isText(m))
      t.is(decoder.decode(m), 'hello, wörld ✓')
    })
  })

  test(`${server}: bytes go as binary and come back as binary`, async (t) => {
    await withEcho(server, async (conn) => {
      const [m] = await roundTrip(conn, [new Uint8Array([0, 1, 2, 0xff])])
      t.false(isText(m))
      t.deepEqual([...m], [0, 1, 2, 0xff])
    })
  })

  test(`${server}: empty text and empty binary messages`, async (t) => {
    await withEcho(server, async (conn) => {
      const [a, b] = await roundTrip(conn, ['', new Uint8Array(0)])
      t.is(a.length, 0)
      t.true(isText(a))
      t.is(b.length, 0)
      t.false(isText(b))
    })
  })

  test(`${server}: a 4 MiB binary message arrives whole`, async (t) => {
    await withEcho(server, async (conn) => {
      const big = randomBytes(4 * 1024 * 1024)
      const [m] = await roundTrip(conn, [big])
      t.is(m.length, big.length)
      t.is(sha256(m), sha256(big))
    })
  })

  test(`${server}: a 4 MiB text message arrives whole`, async (t) => {
    await withEcho(server, async (conn) => {
      const big = 'é'.repeat(2 * 1024 * 1024)
      const [m] = await roundTrip(conn, [big])
      t.true(isText(m))
      t.is(m.length, 4 * 1024 * 1024)
      t.is(decoder.decode(m), big)
    })
  })

  test(`${server}: one message per item, in order, boundaries kept`, async (t) => {
    await withEcho(server, async (conn) => {
      const sent = Array.from({ length: 200 }, (_, i) => i % 2 === 0 ? 'x'.repeat(i) : new Uint8Array(i).fill(i & 0xff))
      const received = await roundTrip(conn, sent)
      t.is(received.length, sent.length)
      for (let i = 0; i < sent.length; i++) {
        const s = sent[i]
        if (typeof s === 'string') {
          t.true(isText(received[i]))
          t.is(decoder.decode(received[i]), s)
        } else {
          t.false(isText(received[i]))
          t.deepEqual([...received[i]], [...s])
        }
      }
    })
  })

  test(`${server}: received messages sent on keep their type (text stays text)`, async (t) => {
    // isText() marks received text, so passing a message on (here: to a second connection) keeps it text.
    const peer = await SERVERS[server]()
    try {
      const first = await connect(peer.url, { heartbeat: false })
      const second = await connect(peer.url, { heartbeat: false })
      const received = await roundTrip(first, ['a', new Uint8Array([1])])
      const again = await roundTrip(second, received)
      t.true(isText(again[0]))
      t.is(decoder.decode(again[0]), 'a')
      t.false(isText(again[1]))
      t.deepEqual([...again[1]], [1])
      first.close()
      second.close()
      await Promise.all([first.closed, second.closed])
    } finally {
      await peer.close()
    }
  })

  test(`${server}: close from the client is answered, closed settles clean with our code`, async (t) => {
    const peer = await SERVERS[server]()
    try {
      const conn = await connect(peer.url, { heartbeat: false })
      conn.close(4000, 'bye')
      t.true(conn.signal.aborted, 'the signal aborts when closing starts')
      const closed = await conn.closed
      t.deepEqual(closed, { code: 4000, reason: 'bye', wasClean: true })
      t.deepEqual(await take(conn.source, 1), [], 'source ends')
    } finally {
      await peer.close()
    }
  })
}

test('ws server: the client masks every frame (ws refuses unmasked ones), with a fresh key per frame', async (t) => {
  // ws closes with 1002 on an unmasked client frame; a full echo proves the frames were masked.
  const closes: number[] = []
  const peer = await startWsServer((ws) => {
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }))
    ws.on('close', (code) => closes.push(code))
  })
  try {
    const conn = await connect(peer.url, { heartbeat: false })
    const messages = Array.from({ length: 50 }, (_, i) => `message ${i}`)
    const received = await roundTrip(conn, messages)
    t.deepEqual(received.map((m) => decoder.decode(m)), messages)
    conn.close()
    await conn.closed
  } finally {
    await peer.close()
  }
  t.false(closes.includes(1002), 'ws never failed the connection for a protocol error')
})

test('ws server: a server close ends the source and settles closed with the server\'s code', async (t) => {
  const peer = await startWsServer((ws) => {
    ws.send('last words')
    ws.close(4001, 'done')
  })
  try {
    const conn = await connect(peer.url, { heartbeat: false })
    const received: string[] = []
    for await (const m of conn.source) received.push(decoder.decode(m))
    t.deepEqual(received, ['last words'])
    t.deepEqual(await conn.closed, { code: 4001, reason: 'done', wasClean: true })
    t.true(conn.signal.aborted)
  } finally {
    await peer.close()
  }
})

test('ws server: the server sees our close code and reason', async (t) => {
  let serverClose: Promise<[number, string]> | undefined
  const peer = await startWsServer((ws) => {
    serverClose = new Promise((resolve) => ws.on('close', (code, reason) => resolve([code, reason.toString()])))
  })
  try {
    const conn = await connect(peer.url, { heartbeat: false })
    conn.close(4321, 'client leaving')
    await conn.closed
    t.deepEqual(await serverClose, [4321, 'client leaving'])
  } finally {
    await peer.close()
  }
})

test('ws server: a message over the client\'s maxMessageSize fails the connection with 1009', async (t) => {
  let serverClose: Promise<number> | undefined
  const peer = await startWsServer((ws) => {
    serverClose = new Promise((resolve) => ws.on('close', (code) => resolve(code)))
    ws.send('small')
    ws.send(Buffer.alloc(1025))
  })
  try {
    const conn = await connect(peer.url, { heartbeat: false, maxMessageSize: 1024 })
    const received: string[] = []
    const err = await t.throwsAsync(async () => {
      for await (const m of conn.source) received.push(decoder.decode(m))
    })
    t.deepEqual(received, ['small'], 'the message before the bad one is delivered')
    t.is((err as { closeCode?: number }).closeCode, 1009)
    t.is((await conn.closed).code, 1009)
    t.is(await serverClose, 1009)
  } finally {
    await peer.close()
  }
})

test('ws server: a message at exactly maxMessageSize is delivered', async (t) => {
  const peer = await startWsServer((ws) => { ws.send(Buffer.alloc(1024, 7)) })
  try {
    const conn = await connect(peer.url, { heartbeat: false, maxMessageSize: 1024 })
    const [m] = await take(conn.source, 1)
    t.is(m.length, 1024)
    conn.close()
    t.is((await conn.closed).code, 1000)
  } finally {
    await peer.close()
  }
})

test('ws server: ping() resolves with a round-trip time when the pong arrives', async (t) => {
  const peer = await startWsServer(() => {})
  try {
    const conn = await connect(peer.url, { heartbeat: false })
    const rtt = await conn.ping(new Uint8Array([1, 2, 3]))
    t.true(rtt >= 0)
    conn.close()
    await conn.closed
    await t.throwsAsync(conn.ping(), { message: /clos/ })
  } finally {
    await peer.close()
  }
})

/** Helper for the echo-of-echo case: `roundTrip` with arbitrary messages. */
async function assertEcho (t: ExecutionContext, conn: Connection): Promise<void> {
  const [m] = await roundTrip(conn, ['ok'])
  t.is(decoder.decode(m), 'ok')
}

peerTest('python3-websockets')('python websockets server: a client that offers no subprotocol gets none', async (t) => {
  const peer = await startPythonServer()
  try {
    const conn = await connect(peer.url, { heartbeat: false })
    t.is(conn.protocol, '')
    await assertEcho(t, conn)
    conn.close()
    await conn.closed
  } finally {
    await peer.close()
  }
})
