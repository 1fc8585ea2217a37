/**
 * A command-line client: sends each argument as a text message, waits for its reply and prints
 * it, then sends the next; closes at the end.
 *
 *   npx tsx examples/client.ts ws://127.0.0.1:8080/ hello world
 */
import { parseArgs } from 'node:util'
import { connect, ConnectionClosedError, type ConnectOptions } from '../src/index.js'
import { isMain } from './run.js'

const decoder = new TextDecoder()

/** Send each of `messages` and await its reply, one at a time; close (1000). Resolves with the replies as text. */
export async function request (url: string, messages: string[], options: ConnectOptions = {}): Promise<string[]> {
  const conn = await connect(url, options)
  const replies: string[] = []
  try {
    for (const message of messages) {
      await conn.send(message)
      // next() reads one message and leaves the source open (a `break` would close the connection).
      const { value: reply, done } = await conn.source.next()
      if (done === true) break
      replies.push(decoder.decode(reply))
    }
  } catch (err) {
    // The server closed first: send() rejects. Reported below with the close code.
    if (!(err instanceof ConnectionClosedError)) throw err
  } finally {
    conn.close()
  }
  const { code, reason } = await conn.closed
  if (replies.length < messages.length) throw new Error(`closed (${code} ${reason}) after ${replies.length} of ${messages.length} replies`)
  return replies
}

if (isMain(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { protocol: { type: 'string', multiple: true } } })
  const [url, ...messages] = positionals
  if (url === undefined) {
    console.error('usage: tsx examples/client.ts [--protocol P] <ws://host:port/path> [message...]')
    process.exit(2)
  }
  for (const reply of await request(url, messages, { protocols: values.protocol })) console.log(reply)
}
