/**
 * AMQP URLs, checked where they are configured (config/checks.ts) and where a transport is built
 * (transport/amqp-options.ts) alike: amqplib parses the URL only when it connects, and herald retries
 * failed connects forever, so a URL that cannot parse would only be logged ("Invalid URL") again and again.
 */

/** Never log passwords. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@");
}

/** Why `url` cannot be an AMQP URL (it does not parse, or is not amqp: or amqps:), or undefined. */
export function amqpUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "not a valid URL: write it as amqp://user:password@host:5672/vhost (amqps:// for TLS; an IPv6 host in brackets, amqp://[::1]:5672/; %-encode reserved characters in the password)";
  }
  if (parsed.protocol !== "amqp:" && parsed.protocol !== "amqps:")
    return `the scheme is ${parsed.protocol.slice(0, -1)}, not amqp or amqps: write amqp://user:password@host:5672/vhost (amqps:// for TLS)`;
  return undefined;
}
