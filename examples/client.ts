/**
 * A command-line client: sends each argument as a text message, prints one reply per message,
 * then closes.
 *
 *   npx tsx examples/client.ts ws://127.0.0.1:8080/ hello world
 */
import { parseArgs } from 'node:util'
import { connect, type ConnectOptions } from '../src/index.js'
import { isMain } from './run.js'

const decoder = new TextDecoder()

/** Send `messages`, wait for as many replies, close (1000). Resolves with the replies as text. */
export async function request (url: string, messages: string[], options: ConnectOptions = {}): Promise<string[]> {
  const conn = await connect(url, options)
  const replies: string[] = []
  try {
    await conn.sink(messages) // the sink's end does not close: the replies can still come
    if (messages.length > 0) {
      for await (const reply of conn.source) {
        replies.push(decoder.decode(reply))
        if (replies.length === messages.length) break
      }
    }
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
