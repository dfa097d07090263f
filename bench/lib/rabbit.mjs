// RabbitMQ admin steps the figures share (amqp: the sink's target queue; cli: fedora-messaging's routable topic).
import amqp from "amqplib";
import { onInterrupt } from "./procs.mjs";
import { AMQP_URL, sleep } from "./util.mjs";

/** One short-lived channel per admin step, retried: other jobs on this machine may restart RabbitMQ. */
export async function admin(fn, tries = 5) {
  for (let i = 1; ; i++) {
    try {
      const conn = await amqp.connect(AMQP_URL);
      try {
        const ch = await conn.createChannel();
        return await fn(ch);
      } finally {
        await conn.close().catch(() => {});
      }
    } catch (err) {
      if (i >= tries) throw err;
      await sleep(1000 * i);
    }
  }
}

/**
 * A durable queue bound to `topic` on amq.topic, so that confirms mean "persisted" and mandatory publishes
 * route. Deleted by `remove()`, or by Ctrl-C's cleanup (bench/lib/procs.mjs) when the run is interrupted.
 */
export async function boundQueue(topic) {
  const queue = `herald-bench-${topic}`;
  const drop = () => admin((ch) => ch.deleteQueue(queue), 2).catch(() => {});
  const unregister = onInterrupt(drop);
  await admin(async (ch) => {
    await ch.assertQueue(queue, { durable: true });
    await ch.bindQueue(queue, "amq.topic", topic);
  });
  return {
    name: queue,
    purge: () => admin((ch) => ch.purgeQueue(queue)),
    remove: async () => {
      await admin((ch) => ch.deleteQueue(queue)).catch(() => {});
      unregister();
    },
  };
}
