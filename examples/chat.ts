/**
 * A chat room: every message a member sends goes to all the other members, as it came (text as
 * text, binary as binary). Join with `ws://host:port/?name=ann`.
 *
 * A slow member must not slow the others down, so nobody waits for anybody: each member has
 * its own bounded `Outbox` (from wspipe), which its connection's `sink` drains as fast as that
 * member reads.
 * When a member's outbox is full, that member is closed with 1008 (policy violation), reason
 * "too slow", and removed from the room. 1008 rather than 1013 (try again later): 1013 says
 * the server is overloaded and the same client may succeed later, while here the fault lies
 * with this one member's connection and reconnecting would not change it.
 *
 *   npx tsx examples/chat.ts --port 8080
 */
import { CloseCode, Outbox, WebSocketServer, type Connection, type OutgoingMessage, type WebSocketServerOptions } from '../src/index.js'
import { isMain, serve } from './run.js'

export interface Member {
  readonly name: string
  readonly conn: Connection
  readonly outbox: Outbox
}

export interface ChatRoomOptions {
  /** Messages a member may have waiting before it is closed with 1008. Default 256. */
  maxQueued?: number
  /** Called when a member is closed for being too slow. */
  onKick?: (member: Member) => void
}

export class ChatRoom {
  readonly members = new Set<Member>()
  private readonly maxQueued: number
  private readonly onKick: ((member: Member) => void) | undefined
  private guests = 0

  constructor (options: ChatRoomOptions = {}) {
    this.maxQueued = options.maxQueued ?? 256
    this.onKick = options.onKick
  }

  /** The handler: one call per member, for as long as it stays. */
  readonly join = async (conn: Connection): Promise<void> => {
    const name = new URLSearchParams(conn.url.slice(conn.path.length)).get('name') ?? `guest-${++this.guests}`
    const member: Member = { name, conn, outbox: new Outbox(this.maxQueued) }
    this.members.add(member)
    // The sink drains this member's outbox at the pace this member reads.
    const sending = conn.sink(member.outbox)
    try {
      for await (const message of conn.source) this.broadcast(message, member)
    } finally {
      this.leave(member)
    }
    await sending
  }

  /** Queue `message` for every member but `from`; whoever has no room left is closed. */
  broadcast (message: OutgoingMessage, from?: Member): void {
    for (const member of this.members) {
      if (member === from) continue
      if (!member.outbox.push(message)) this.kick(member)
    }
  }

  private kick (member: Member): void {
    this.leave(member)
    member.conn.close(CloseCode.PolicyViolation, 'too slow')
    this.onKick?.(member)
  }

  private leave (member: Member): void {
    if (this.members.delete(member)) member.outbox.end()
  }
}

export function createServer (room = new ChatRoom(), options: WebSocketServerOptions = {}): WebSocketServer {
  return new WebSocketServer(options)
    .register('chat', room.join)
    .register('', room.join)
}

if (isMain(import.meta.url)) await serve(createServer())
