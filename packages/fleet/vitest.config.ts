import { gatherTestConfig } from '../../tools/vitest.shared.js';

export default gatherTestConfig({ services: true });
