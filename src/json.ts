/**
 * JSON messages: {@link json}.decode and {@link json}.encode are transforms for it-pipe (and for
 * `sink`), so a JSON protocol is a pipeline. A message that is not UTF-8 JSON makes `decode`
 * throw a {@link JsonDecodeError}, which carries the close code to answer with (1007).
 *
 * @example
 * ```ts
 * import map from 'it-map'
 * import { pipe } from 'it-pipe'
 * import { json, JsonDecodeError } from 'wspipe'
 *
 * server.register('rpc', async (conn) => {
 *   try {
 *     await pipe(conn, json.decode, (requests) => map(requests, answer), json.encode, conn)
 *   } catch (err) {
 *     if (!(err instanceof JsonDecodeError)) throw err
 *     conn.close(err.closeCode, err.message)
 *   }
 * })
 * ```
 *
 * @packageDocumentation
 */

import { JsonDecodeError } from './errors.js'

const decoder = new TextDecoder('utf-8', { fatal: true })

/** Messages in, values out: each message (text or binary) parsed as UTF-8 JSON. @throws JsonDecodeError for a message that is not. */
async function * decode<T = unknown> (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<T> {
  for await (const message of source) {
    let value: T
    try {
      value = JSON.parse(decoder.decode(message)) as T
    } catch (err) {
      throw new JsonDecodeError('a message is not valid JSON', { cause: err })
    }
    yield value
  }
}

/** Values in, text messages out (`JSON.stringify`). */
async function * encode (source: AsyncIterable<unknown> | Iterable<unknown>): AsyncGenerator<string> {
  for await (const value of source) yield JSON.stringify(value)
}

/** The JSON codec: two transforms, `decode` (messages to values) and `encode` (values to text messages). */
export const json = {
  /** Messages in, values out: each message parsed as UTF-8 JSON; throws {@link JsonDecodeError} for one that is not. */
  decode,
  /** Values in, text messages out (`JSON.stringify`). */
  encode
}
