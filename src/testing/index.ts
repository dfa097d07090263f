/** `herald/testing`: what users' own tests need. */
export { MemoryBus, MemoryTransport } from "../transport/memory.js";
export { startTestBroker, type TestBroker, type TestBrokerOptions } from "./broker.js";
export { type CassetteEntry, Recorder, readCassette } from "./recording.js";
