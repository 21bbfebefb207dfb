import { ciSuite } from './ci-suite.js';

ciSuite('restart');
