import { MemoryStore } from '../src/store/memory.js'
import { storeConformance } from './store-conformance.js'

storeConformance('memory store', async (t) => {
  const store = new MemoryStore()
  t.after(() => store.close())
  return store
})
