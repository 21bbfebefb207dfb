import { runWithBackend } from '@push/backend';
import { startPublisher } from './server.js';

/** Publisher process: accepts portal messages over HTTP, stores them in Redis and announces them to listeners. */
runWithBackend('publisher', 9010, startPublisher);
