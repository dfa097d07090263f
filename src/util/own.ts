/**
 * Set an own, enumerable property, even when the key is "__proto__". Keys that come from outside (YAML and
 * fedmsg config files, AMQP headers) go through here: a plain `obj[key] = v` with key "__proto__" would
 * change the object's prototype, or silently drop the value, instead of storing a header or setting.
 */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
