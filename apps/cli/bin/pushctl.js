#!/usr/bin/env node
// Committed launcher (the compiled entry point is built by `npm run build`, after npm links bins).
import '../dist/main.js';
