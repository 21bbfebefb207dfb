import { ciSuite } from './ci-suite.js';

ciSuite('pause-long');
