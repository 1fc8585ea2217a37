/**
 * The demo's TLS flags: `npm start -- --port N --tls` (a self-signed certificate made at start)
 * and `--cert CERT --key KEY` serve the page, /stats and the WebSocket endpoints on that one
 * port over HTTP/2 and HTTP/1.1. (Plain `npm start -- --port N`: test/server/demo.test.ts.)
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { peerTest } from '../peers.js'
import { freePort, sleep, stopChild, within } from '../server/helpers.js'
import { H2Socket, makeCertificate, openSession } from './helpers.js'

const test = peerTest('openssl')
const ROOT = fileURLToPath(new URL('../../', import.meta.url))


/** `npm start -- …args`, once it printed its wss:// URL. */
async function startDemo (t: { teardown: (f: () => Promise<void>) => void }, args: string[], port: number): Promise<ChildProcess> {
  const child = spawn('npm', ['start', '--', '--port', String(port), ...args], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => stopChild(child))
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  const url = `wss://127.0.0.1:${port}/`
  await within((async () => {
    while (!stdout.split('\n').includes(url)) {
      if (child.exitCode !== null) throw new Error(`the demo exited: ${stderr}`)
      await sleep(50)
    }
  })(), 45_000, `the demo prints ${url}`)
  if (!stdout.split('\n').includes(`https://127.0.0.1:${port}/`)) throw new Error(`no https:// URL in ${stdout}`)
  return child
}

/** GET `path` on an HTTP/2 session: status and body. */
async function get (session: Awaited<ReturnType<typeof openSession>>, path: string): Promise<{ status: number, body: string }> {
  const req = session.request({ ':path': path })
  req.end()
  let body = ''
  req.setEncoding('utf8').on('data', (d: string) => { body += d })
  const [headers] = await once(req, 'response') as [Record<string, unknown>]
  await once(req, 'end')
  return { status: Number(headers[':status']), body }
}

for (const flags of ['--tls', '--cert/--key'] as const) {
  test(`npm start -- --port N ${flags}: page, /stats and WebSockets over HTTP/2 and HTTP/1.1 on one TLS port`, async (t) => {
    t.timeout(90_000)
    let args = ['--tls']
    if (flags === '--cert/--key') {
      const dir = await mkdtemp(join(tmpdir(), 'wspipe-demo-tls-'))
      t.teardown(() => rm(dir, { recursive: true, force: true }))
      const { key, cert } = await makeCertificate()
      await writeFile(join(dir, 'key.pem'), key)
      await writeFile(join(dir, 'cert.pem'), cert)
      args = ['--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')]
    }
    const port = await freePort()
    await startDemo(t, args, port)
    const origin = `https://127.0.0.1:${port}`
    const session = await openSession(origin)
    t.teardown(() => { session.destroy() })
    t.true(session.remoteSettings.enableConnectProtocol)
    const page = await get(session, '/')
    t.is(page.status, 200)
    t.regex(page.body, /<title>wspipe demo<\/title>/)

    const h2 = await H2Socket.open(session, '/', { 'sec-websocket-protocol': 'echo' })
    t.is(h2.status, 200)
    h2.sendText('over HTTP/2')
    t.is((await h2.next()).payload.toString(), 'over HTTP/2')

    const ws = new WebSocket(`wss://127.0.0.1:${port}/`, ['echo'], { rejectUnauthorized: false })
    await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) }), 10_000, 'ws open')
    ws.send('over HTTP/1.1')
    const [reply] = await once(ws, 'message') as [Buffer]
    t.is(reply.toString(), 'over HTTP/1.1')

    const stats = JSON.parse((await get(session, '/stats')).body) as { connections: number, http2: number }
    t.is(stats.connections, 2)
    t.is(stats.http2, 1)
    ws.close()
  })
}
