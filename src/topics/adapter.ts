/**
 * {@link TopicsAdapter}: what carries publishes between processes. {@link Topics} calls it;
 * an implementation (e.g. {@link "wspipe/redis"!RedisAdapter}) talks to whatever connects the processes.
 *
 * @packageDocumentation
 */

/**
 * Where an adapter hands the messages other processes published. What comes over the link is
 * input: {@link Topics} sends it to members as it is, so an adapter hands over only well-formed
 * messages, text that is valid UTF-8 and none larger than the members may receive, and drops
 * (and counts) the rest: a member's client would close on the first bad one (1007, 1009).
 */
export type RemoteDelivery = (topic: string, payload: Uint8Array, text: boolean) => void

/**
 * Carries publishes between processes. Delivery is at most once: a message published while the
 * link is down may be lost, never duplicated, and never comes back to the process that sent it.
 * What piles up while the link is down or slow is bounded.
 */
export interface TopicsAdapter {
  /** Called once by the {@link wspipe!Topics} that use this adapter, with where remote messages go. */
  start: (deliver: RemoteDelivery) => void
  /** Send a message published in this process to the others (the payload must not be changed). */
  publish: (topic: string, payload: Uint8Array, text: boolean) => void
  /**
   * This process has its first subscriber of `topic`: start receiving it. May return a promise
   * that resolves once the topic is live (what other processes publish from then on arrives):
   * `Subscription.ready` waits for it. It should settle once the topic is unsubscribed, too, and
   * never reject; returning nothing means live at once.
   */
  subscribe: (topic: string) => Promise<void> | void
  /** This process has no subscriber of `topic` any more: stop receiving it. */
  unsubscribe: (topic: string) => void
  /** Let go of the link. */
  close: () => Promise<void>
}
