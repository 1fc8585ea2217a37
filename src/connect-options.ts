/**
 * `connect`'s second argument, checked the same way in Node and in the browser build (so no
 * Node import here).
 *
 * @packageDocumentation
 */

/**
 * A TypeError for a second argument that is not an options object, or undefined. The WebSocket
 * API's `new WebSocket(url, protocols)` takes the subprotocols there, so a string or an array is
 * most likely them: the message shows where they go.
 */
export function optionsArgumentError (options: unknown): TypeError | undefined {
  if (typeof options === 'object' && options !== null && !Array.isArray(options)) return undefined
  if (typeof options === 'string' || Array.isArray(options)) return new TypeError(`connect takes options: connect(url, { protocols: ${JSON.stringify(options)} })`)
  return new TypeError(`connect takes an options object, not ${String(options)}`)
}
