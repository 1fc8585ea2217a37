/**
 * permessage-deflate negotiation (RFC 7692 §5–§7), pure: the server's choice among offers and
 * its answer, the client's offer, and the client's check of the answer.
 */

import test from 'ava'
import { HandshakeError } from '../../src/errors.js'
import { parseExtensions } from '../../src/handshake.js'
import { acceptDeflateOffer, checkDeflateAnswer, deflateOffer, type DeflateParams, type DeflateRequest } from '../../src/extensions/deflate-negotiation.js'

const FULL: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }

function accept (header: string, prefs: DeflateRequest = {}): { params: DeflateParams, header: string } | undefined {
  return acceptDeflateOffer(parseExtensions(header), prefs)
}

// Server: one offer, each parameter with and without a value.
const ACCEPTED: Array<[string, DeflateRequest, Partial<DeflateParams>, string]> = [
  ['permessage-deflate', {}, {}, 'permessage-deflate'],
  ['permessage-deflate; client_max_window_bits', {}, {}, 'permessage-deflate'],
  ['permessage-deflate; client_max_window_bits=10', {}, { clientMaxWindowBits: 10 }, 'permessage-deflate; client_max_window_bits=10'],
  ['permessage-deflate; client_max_window_bits="12"', {}, { clientMaxWindowBits: 12 }, 'permessage-deflate; client_max_window_bits=12'],
  ['permessage-deflate; server_max_window_bits=8', {}, { serverMaxWindowBits: 8 }, 'permessage-deflate; server_max_window_bits=8'],
  ['permessage-deflate; server_max_window_bits=15', {}, {}, 'permessage-deflate; server_max_window_bits=15'],
  ['permessage-deflate; server_no_context_takeover', {}, { serverNoContextTakeover: true }, 'permessage-deflate; server_no_context_takeover'],
  ['permessage-deflate; client_no_context_takeover', {}, { clientNoContextTakeover: true }, 'permessage-deflate; client_no_context_takeover'],
  ['permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=11', {},
    { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 11 },
    'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=11'],
  // The server's own wishes: no context takeover either side, smaller windows.
  ['permessage-deflate', { serverNoContextTakeover: true, clientNoContextTakeover: true }, { serverNoContextTakeover: true, clientNoContextTakeover: true }, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
  ['permessage-deflate', { serverMaxWindowBits: 12 }, { serverMaxWindowBits: 12 }, 'permessage-deflate; server_max_window_bits=12'],
  ['permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 12 }, { serverMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=10'],
  ['permessage-deflate; server_max_window_bits=13', { serverMaxWindowBits: 12 }, { serverMaxWindowBits: 12 }, 'permessage-deflate; server_max_window_bits=12'],
  ['permessage-deflate; client_max_window_bits', { clientMaxWindowBits: 9 }, { clientMaxWindowBits: 9 }, 'permessage-deflate; client_max_window_bits=9'],
  ['permessage-deflate; client_max_window_bits=8', { clientMaxWindowBits: 9 }, { clientMaxWindowBits: 8 }, 'permessage-deflate; client_max_window_bits=8'],
  // §7.1.2.2: without client_max_window_bits in the offer, the client's window cannot be limited.
  ['permessage-deflate', { clientMaxWindowBits: 9 }, {}, 'permessage-deflate']
]
for (const [offer, prefs, params, answer] of ACCEPTED) {
  test(`server accepts "${offer}" with ${JSON.stringify(prefs)} → "${answer}"`, (t) => {
    const got = accept(offer, prefs)
    t.deepEqual(got, { params: { ...FULL, ...params }, header: answer })
  })
}

// Server: malformed offers are declined (§7), not failed.
const DECLINED = [
  'permessage-deflate; server_max_window_bits',
  'permessage-deflate; server_max_window_bits=7',
  'permessage-deflate; server_max_window_bits=16',
  'permessage-deflate; server_max_window_bits=010',
  'permessage-deflate; server_max_window_bits=1a',
  'permessage-deflate; client_max_window_bits=0',
  'permessage-deflate; client_max_window_bits=16',
  'permessage-deflate; server_no_context_takeover=1',
  'permessage-deflate; client_no_context_takeover=yes',
  'permessage-deflate; unknown_parameter',
  'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
  'permessage-deflate; client_max_window_bits; client_max_window_bits=10',
  'x-webkit-deflate-frame',
  'deflate-frame; no_context_takeover'
]
for (const offer of DECLINED) {
  test(`server declines "${offer}"`, (t) => {
    t.is(accept(offer), undefined)
  })
}

test('server: the first acceptable offer wins; malformed ones before it are skipped', (t) => {
  t.deepEqual(accept('permessage-deflate; server_max_window_bits=20, permessage-deflate; client_no_context_takeover, permessage-deflate'), {
    params: { ...FULL, clientNoContextTakeover: true }, header: 'permessage-deflate; client_no_context_takeover'
  })
  t.deepEqual(accept('foo, permessage-deflate; server_max_window_bits=9; client_max_window_bits, permessage-deflate')?.header, 'permessage-deflate; server_max_window_bits=9')
  t.is(accept('foo; bar=1, baz'), undefined)
  t.is(acceptDeflateOffer([]), undefined)
})

test('a header that is not RFC 6455 §9.1 syntax is a 400 before negotiation', (t) => {
  for (const bad of ['permessage-deflate; client_max_window_bits=', 'permessage deflate', 'permessage-deflate; a=b c', '"permessage-deflate"']) {
    const err = t.throws(() => parseExtensions(bad), { instanceOf: HandshakeError }, bad)
    t.is(err?.status, 400)
  }
  t.deepEqual(parseExtensions('permessage-deflate; a; a=1'), [{ name: 'permessage-deflate', params: { a: '1' }, repeated: 'a' }])
})

// Client: the offer.
test('client offers', (t) => {
  t.is(deflateOffer(), 'permessage-deflate; client_max_window_bits')
  t.is(deflateOffer({ serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 11 }),
    'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11')
  // The server reads back what the client offers.
  t.deepEqual(accept(deflateOffer({ serverMaxWindowBits: 10, clientMaxWindowBits: 11 }))?.params, { ...FULL, serverMaxWindowBits: 10, clientMaxWindowBits: 11 })
})

// Client: the answer.
function answer (header: string, request: DeflateRequest = {}): DeflateParams | undefined {
  return checkDeflateAnswer(parseExtensions(header), request)
}

test('client takes valid answers', (t) => {
  t.is(checkDeflateAnswer([]), undefined, 'declined: no compression')
  t.deepEqual(answer('permessage-deflate'), FULL)
  t.deepEqual(answer('permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10'),
    { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 10 })
  t.deepEqual(answer('permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 12 }), { ...FULL, serverMaxWindowBits: 10 })
  t.deepEqual(answer('permessage-deflate; server_no_context_takeover', { serverNoContextTakeover: true }), { ...FULL, serverNoContextTakeover: true })
  // Our own client_no_context_takeover holds even when the server does not repeat it.
  t.deepEqual(answer('permessage-deflate', { clientNoContextTakeover: true }), { ...FULL, clientNoContextTakeover: true })
  t.deepEqual(answer('permessage-deflate', { clientMaxWindowBits: 11 }), { ...FULL, clientMaxWindowBits: 11 })
})

const FAILED: Array<[string, DeflateRequest]> = [
  ['permessage-deflate, permessage-deflate', {}],
  ['permessage-deflate; unknown', {}],
  ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', {}],
  ['permessage-deflate; server_no_context_takeover=1', {}],
  ['permessage-deflate; server_max_window_bits', {}],
  ['permessage-deflate; server_max_window_bits=16', {}],
  ['permessage-deflate; client_max_window_bits', {}],
  ['permessage-deflate; client_max_window_bits=7', {}],
  ['permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: 10 }],
  ['permessage-deflate', { serverMaxWindowBits: 10 }],
  ['permessage-deflate; server_max_window_bits=11', { serverMaxWindowBits: 10 }],
  ['permessage-deflate', { serverNoContextTakeover: true }]
]
for (const [header, request] of FAILED) {
  test(`client fails the answer "${header}" to ${JSON.stringify(request)}`, (t) => {
    const err = t.throws(() => answer(header, request), { instanceOf: HandshakeError })
    t.is(err?.status, 101)
  })
}
