/**
 * The rule for tests that need a system peer (test/peers.ts): run when present; when absent,
 * skip naming the Debian package, or fail under WSPIPE_REQUIRE_PEERS=1.
 */

import test from 'ava'
import { decide, hasPeer } from './peers.js'

test('a hidden peer is absent: skipped, naming the package to install', (t) => {
  const env = { WSPIPE_HIDE_PEERS: 'chromium' }
  t.false(hasPeer('chromium', env))
  t.deepEqual(decide(['chromium'], env), { action: 'skip', message: 'needs chromium: apt-get install chromium' })
})

test('under WSPIPE_REQUIRE_PEERS=1 an absent peer is a failure, still naming the package', (t) => {
  const decision = decide(['python3-websockets', 'chromium'], { WSPIPE_HIDE_PEERS: 'python3-websockets, chromium', WSPIPE_REQUIRE_PEERS: '1' })
  t.is(decision.action, 'fail')
  t.regex(decision.action === 'run' ? '' : decision.message, /needs python3-websockets, chromium.*apt-get install python3-websockets chromium/)
})

test('no peers needed: run', (t) => {
  t.deepEqual(decide([], { WSPIPE_REQUIRE_PEERS: '1' }), { action: 'run' })
})
