/**
 * System peers: programs some tests talk to that `npm install` does not bring. A test that needs
 * one is declared with `peerTest(peer)` instead of `test`. When the peer is present it is plain
 * ava `test`; when it is absent its tests are skipped, each with one line naming the Debian package
 * to install, or, with `WSPIPE_REQUIRE_PEERS=1` (as `.ci/run` sets), they fail, so CI never skips
 * silently. `WSPIPE_HIDE_PEERS=chromium,openssl` makes the listed peers count as absent, to try
 * either path on a machine that has them.
 */

import { execFileSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import test, { type ExecutionContext, type Implementation } from 'ava'

/** Each peer, by the name of the Debian package that brings it. */
export type Peer = 'python3-websockets' | 'chromium' | 'openssl' | 'redis-server' | 'nginx'

/** Does `command args` run and exit 0 within 10 s? */
function runs (command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore', timeout: 10_000 })
    return true
  } catch {
    return false
  }
}

function executable (path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** How each peer is found; the paths are the ones the tests use. */
const PROBES: Record<Peer, () => boolean> = {
  // Debian's module is only visible to the system interpreter, which the tests run.
  'python3-websockets': () => runs('/usr/bin/python3', ['-c', 'import websockets']),
  chromium: () => executable('/usr/bin/chromium'),
  openssl: () => runs('openssl', ['version']),
  'redis-server': () => runs('redis-server', ['--version']),
  // nginx lives in /usr/sbin, which is not on every user's PATH.
  nginx: () => executable('/usr/sbin/nginx') || runs('nginx', ['-v'])
}

const found = new Map<Peer, boolean>()

/** Is `peer` installed (and not hidden by `WSPIPE_HIDE_PEERS`)? Probed once per process. */
export function hasPeer (peer: Peer, env: NodeJS.ProcessEnv = process.env): boolean {
  const hidden = (env.WSPIPE_HIDE_PEERS ?? '').split(',').map((s) => s.trim())
  if (hidden.includes(peer)) return false
  let present = found.get(peer)
  if (present === undefined) {
    present = PROBES[peer]()
    found.set(peer, present)
  }
  return present
}

/** What to do with a test needing `peers`: run it, or skip or fail it with `message`. */
export type PeerDecision = { action: 'run' } | { action: 'skip' | 'fail', message: string }

export function decide (peers: Peer[], env: NodeJS.ProcessEnv = process.env): PeerDecision {
  const absent = peers.filter((peer) => !hasPeer(peer, env))
  if (absent.length === 0) return { action: 'run' }
  const install = `apt-get install ${absent.join(' ')}`
  if (env.WSPIPE_REQUIRE_PEERS === '1') {
    return { action: 'fail', message: `needs ${absent.join(', ')}, which is absent, and WSPIPE_REQUIRE_PEERS=1 makes that a failure: ${install}` }
  }
  return { action: 'skip', message: `needs ${absent.join(', ')}: ${install}` }
}

/** The parts of ava's `test` that files needing a peer use. */
export interface PeerTestFn {
  (title: string, implementation: Implementation<[]>): void
  /** A test that runs alone, after the concurrent ones of its file (ava's `test.serial`). */
  serial: (title: string, implementation: Implementation<[]>) => void
  before: (implementation: Implementation<[]>) => void
  after: { always: (implementation: Implementation<[]>) => void }
}

/**
 * `test` for tests that need `peers`. Absent peers turn each test into a skipped one titled
 * `<title> — needs <package>: apt-get install <package>` (or a failing one under
 * `WSPIPE_REQUIRE_PEERS=1`), and its hooks into nothing, since they would only fail on the
 * missing program.
 */
export function peerTest (...peers: Peer[]): PeerTestFn {
  const decision = decide(peers)
  if (decision.action === 'run') return test
  const noHook = (): void => {}
  const stand = decision.action === 'skip'
    ? (title: string): void => { test.skip(`${title} — ${decision.message}`, () => {}) }
    : (title: string): void => { test(title, (t: ExecutionContext) => { t.fail(decision.message) }) }
  return Object.assign(stand, { serial: stand, before: noHook, after: { always: noHook } })
}
