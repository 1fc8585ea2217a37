/**
 * Behind a real nginx (Debian package nginx), with the configuration block of
 * docs/deployment.md (ports and timeouts substituted): the upgrade is proxied (subprotocol
 * included); `trustProxy: 1` gives the client's address, not nginx's nor a forged one; a
 * heartbeat below `proxy_read_timeout` keeps an idle connection open, and without one nginx
 * closes it.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connect, WebSocketServer, type Connection, type WebSocketServerOptions } from '../../src/index.js'
import { take, text } from '../../src/testing.js'
import { peerTest } from '../peers.js'
import { freePort } from '../topics/redis-server.js'

const test = peerTest('nginx')
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const NGINX = '/usr/sbin/nginx'

/** The ```nginx block of docs/deployment.md. */
function documentedConfig (): string {
  const doc = readFileSync(`${ROOT}docs/deployment.md`, 'utf8')
  const block = /```nginx\n([\s\S]*?)```/.exec(doc)
  if (block === null) throw new Error('docs/deployment.md has no nginx block')
  return block[1]
}

interface Proxy { url: string, stop: () => Promise<void> }

/** Start nginx on a free port in front of `upstreamPort`, with the documented block. */
async function startNginx (upstreamPort: number, readTimeout = '75s'): Promise<Proxy> {
  const dir = mkdtempSync(join(tmpdir(), 'wspipe-nginx-'))
  const port = await freePort()
  let site = documentedConfig()
  const swaps: Array<[string, string]> = [
    ['server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`],
    ['listen 80;', `listen 127.0.0.1:${port};`],
    ['proxy_read_timeout 75s;', `proxy_read_timeout ${readTimeout};`],
    // nginx connects from 127.0.0.2, so its address and the client's (127.0.0.1) differ.
    ['proxy_pass http://wspipe;', 'proxy_pass http://wspipe;\n    proxy_bind 127.0.0.2;']
  ]
  for (const [from, to] of swaps) {
    if (!site.includes(from)) throw new Error(`the documented block lost '${from}'`)
    site = site.replace(from, to)
  }
  writeFileSync(join(dir, 'nginx.conf'), `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${site}
}
`)
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-e', `${dir}/error.log`, '-c', `${dir}/nginx.conf`], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // Ready once it accepts a connection (bounded).
  const { connect: tcp } = await import('node:net')
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcp(port, '127.0.0.1', () => { s.destroy(); resolve(true) })
      s.on('error', () => resolve(false))
    })
    if (ok) break
    if (i >= 100 || child.exitCode !== null) throw new Error(`nginx did not start: ${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    url: `ws://127.0.0.1:${port}/`,
    stop: async () => {
      child.kill('SIGTERM')
      await exited
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

async function backend (options: WebSocketServerOptions, seen: Connection[] = []): Promise<{ server: WebSocketServer, port: number }> {
  const server = new WebSocketServer(options)
  const handler = (conn: Connection): Promise<void> => { seen.push(conn); return conn.sink(conn.source) }
  server.register('echo', handler).register('', handler)
  const { port } = await server.listen({ port: 0 })
  return { server, port }
}

test('the upgrade goes through nginx: subprotocol, messages both ways, a clean close', async (t) => {
  const { server, port } = await backend({})
  const proxy = await startNginx(port)
  try {
    const conn = await connect(proxy.url + 'some/path?x=1', { protocols: ['echo'] })
    t.is(conn.protocol, 'echo')
    await conn.sink(['through nginx', new Uint8Array([1, 2, 3])])
    const [a, b] = await take(conn.source, 2)
    t.is(text(a), 'through nginx')
    t.deepEqual([...b], [1, 2, 3])
    conn.close(1000, 'bye')
    t.deepEqual(await conn.closed, { code: 1000, reason: 'bye', wasClean: true })
  } finally {
    await proxy.stop()
    await server.close()
  }
})

test("trustProxy: 1 gives the client's address as nginx saw it, ignoring a forged X-Forwarded-For; off, nginx's own", async (t) => {
  const trusted: Connection[] = []
  const plain: Connection[] = []
  const one = await backend({ trustProxy: 1 }, trusted)
  const two = await backend({}, plain)
  const p1 = await startNginx(one.port)
  const p2 = await startNginx(two.port)
  try {
    for (const url of [p1.url, p2.url]) {
      const conn = await connect(url, { headers: { 'X-Forwarded-For': '6.6.6.6' } })
      conn.close()
      await conn.closed
    }
    t.is(trusted[0].headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1')
    t.is(trusted[0].remoteAddress, '127.0.0.1', 'the client, as nginx saw it')
    t.is(plain[0].remoteAddress, '127.0.0.2', 'nginx itself')
  } finally {
    await Promise.all([p1.stop(), p2.stop()])
    await Promise.all([one.server.close(), two.server.close()])
  }
})

test('a heartbeat below proxy_read_timeout keeps an idle connection open through nginx; without one nginx closes it', async (t) => {
  const beating = await backend({ heartbeat: { interval: 300, timeout: 300 } })
  const silent = await backend({ heartbeat: false })
  const p1 = await startNginx(beating.port, '1s')
  const p2 = await startNginx(silent.port, '1s')
  try {
    const kept = await connect(p1.url, { heartbeat: false })
    const lost = await connect(p2.url, { heartbeat: false })
    const lostInfo = await lost.closed
    t.false(lostInfo.wasClean)
    t.is(lostInfo.code, 1006, 'nginx gave up on the idle connection')
    await new Promise((resolve) => setTimeout(resolve, 1500))
    // 2.5 s in all, past proxy_read_timeout twice: still open, and it still echoes.
    await kept.sink(['still here'])
    t.deepEqual(text(await take(kept.source, 1)), ['still here'])
    kept.close()
    t.true((await kept.closed).wasClean)
  } finally {
    await Promise.all([p1.stop(), p2.stop()])
    await Promise.all([beating.server.close(), silent.server.close()])
  }
})
