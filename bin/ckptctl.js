#!/usr/bin/env node
import "../dist/src/ckptctl/main.js";
