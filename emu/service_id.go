package emu

// ServiceID names a native kernel service: a slice function whose body the
// emulator provides when a CPU reaches its symbol. Values are stable: a trace
// stores them under the names of format.Services (record's TestEnumTwins
// checks that the two agree).
type ServiceID uint8

const (
	SvcTextPoke    ServiceID = 1  // text_poke(addr, src, len): write kernel text through a writable alias
	SvcSetMemoryRO ServiceID = 2  // set_memory_ro(addr, npages)
	SvcSetMemoryRW ServiceID = 3  // set_memory_rw(addr, npages)
	SvcSetMemoryX  ServiceID = 4  // set_memory_x(addr, npages)
	SvcSetMemoryNX ServiceID = 5  // set_memory_nx(addr, npages)
	SvcModuleAlloc ServiceID = 6  // module_alloc(size) -> rw- pages
	SvcSendIPI     ServiceID = 7  // pt_send_ipi(cpu or -1 all-but-self or -2 all, vector)
	SvcPanic       ServiceID = 8  // panic(msg)
	SvcBug         ServiceID = 9  // pt_bug(id): BUG()
	SvcMarker      ServiceID = 10 // pt_marker(id, value)
	SvcSwitch      ServiceID = 11 // pt_switch(prev task id, next task id): scheduler notes a context switch
	SvcExit        ServiceID = 12 // pt_cpu_done(): this CPU has finished its work
	SvcVfree       ServiceID = 13 // vfree(addr): unmap a module_alloc allocation
	SvcModuleFree  ServiceID = 14 // module_memfree(addr): the same, as the module loader frees
	maxServices              = 15
)

// serviceSymbols maps each service to the slice symbol that provides it.
var serviceSymbols = [...]string{
	SvcTextPoke: "text_poke", SvcSetMemoryRO: "set_memory_ro", SvcSetMemoryRW: "set_memory_rw",
	SvcSetMemoryX: "set_memory_x", SvcSetMemoryNX: "set_memory_nx", SvcModuleAlloc: "module_alloc",
	SvcSendIPI: "pt_send_ipi", SvcPanic: "panic", SvcBug: "pt_bug", SvcMarker: "pt_marker",
	SvcSwitch: "pt_switch", SvcExit: "pt_cpu_done", SvcVfree: "vfree", SvcModuleFree: "module_memfree",
}

func (s ServiceID) String() string {
	if int(s) < len(serviceSymbols) && serviceSymbols[s] != "" {
		return serviceSymbols[s]
	}
	return "service?"
}
