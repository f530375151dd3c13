// bench/exec_floor.c — the exec floor: a static binary that does nothing. Spawning and reaping
// it measures what any plugin pays before its first instruction (fork/exec, ELF load, exit,
// wait) plus the harness's own timing overhead, which every other figure also contains.
// Built by scripts/bench: gcc -O2 -static -o exec_floor bench/exec_floor.c
int main(void) { return 0; }
