import { ciSuite } from './ci-suite.js';

ciSuite('redis');
