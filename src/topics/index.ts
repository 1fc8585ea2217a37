/**
 * Publish/subscribe: {@link Topics} in one process, {@link TopicsAdapter} to span processes,
 * {@link RedisAdapter} to span them through Redis.
 *
 * @packageDocumentation
 */

export { Topics, Subscription, DEFAULT_TOPICS_OPTIONS, type TopicsOptions, type SlowSubscriberPolicy, type TopicMessage } from './topics.js'
export type { TopicsAdapter, RemoteDelivery } from './adapter.js'
export { RedisAdapter, DEFAULT_REDIS_ADAPTER_OPTIONS, type RedisAdapterOptions } from './redis.js'
