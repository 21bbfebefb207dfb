import { runWithBackend } from '@push/backend';
import { startListener } from './server.js';

/** Listener process: subscribes to Redis for the channels its sockets need and streams to them. */
runWithBackend('listener', 8010, startListener);
