/**
 * {@link TopicsAdapter}: what carries publishes between processes. {@link Topics} calls it;
 * an implementation (e.g. {@link RedisAdapter}) talks to whatever connects the processes.
 *
 * @packageDocumentation
 */

/** Where an adapter hands the messages other processes published. */
export type RemoteDelivery = (topic: string, payload: Uint8Array, text: boolean) => void

/**
 * Carries publishes between processes. Delivery is at most once: a message published while the
 * link is down may be lost, never duplicated, and never comes back to the process that sent it.
 */
export interface TopicsAdapter {
  /** Called once by the {@link Topics} that use this adapter, with where remote messages go. */
  start: (deliver: RemoteDelivery) => void
  /** Send a message published in this process to the others (the payload must not be changed). */
  publish: (topic: string, payload: Uint8Array, text: boolean) => void
  /** This process has its first subscriber of `topic`: start receiving it. */
  subscribe: (topic: string) => void
  /** This process has no subscriber of `topic` any more: stop receiving it. */
  unsubscribe: (topic: string) => void
  /** Let go of the link. */
  close: () => Promise<void>
}
