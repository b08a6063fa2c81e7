# nnc — build, test, demo. `make` builds build/nnc and build/libnnrt.a.
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -D_GNU_SOURCE
BUILD   := build
FUZZ_TARGETS := frontend safetensors npy

# make SANITIZE=1: nnc, the runtime and every program nnc builds, with ASan and UBSan.
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DNNC_SANITIZE
endif

COMPILER_SRC := $(wildcard compiler/*.c) $(wildcard compiler/passes/*.c)
COMPILER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(COMPILER_SRC)) $(BUILD)/compiler/lexer.o $(BUILD)/compiler/parser.tab.o
RUNTIME_SRC  := $(wildcard runtime/*.c)
RUNTIME_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(RUNTIME_SRC))

all: deps $(BUILD)/nnc $(BUILD)/libnnrt.a

# Installs missing Debian packages (fast and silent when all are present). Everything that compiles
# waits for it (`| deps`), so that `make -j` on a fresh machine does not run bison before it is installed.
deps:
	@sh tools/deps.sh

test: all $(BUILD)/tests/test_runtime $(BUILD)/tests/test_compiler $(addprefix $(BUILD)/fuzz/replay_,$(FUZZ_TARGETS))
	@/usr/bin/python3 tests/run.py $(TEST_SUITES)

$(BUILD)/tests/test_runtime: tests/unit/test_runtime.c $(BUILD)/libnnrt.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -Iruntime -o $@ $< $(BUILD)/libnnrt.a -lm -lpthread

# The compiler's unit tests link every compiler object except main.o.
$(BUILD)/tests/test_compiler: tests/unit/test_compiler.c $(filter-out $(BUILD)/compiler/main.o,$(COMPILER_OBJ)) $(BUILD)/libnnrt.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -Icompiler -I$(BUILD)/compiler -Iruntime -o $@ $^ -lm -lpthread

# nnc links the runtime's loader, to check and fold weights it embeds (--embed-weights).
$(BUILD)/nnc: $(COMPILER_OBJ) $(BUILD)/libnnrt.a
	$(CC) $(CFLAGS) -o $@ $^ -lm -lpthread

$(BUILD)/libnnrt.a: $(RUNTIME_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/compiler/parser.tab.c $(BUILD)/compiler/parser.tab.h: compiler/parser.y | deps
	@mkdir -p $(dir $@)
	bison -Wall -Werror --defines=$(BUILD)/compiler/parser.tab.h -o $(BUILD)/compiler/parser.tab.c $<

$(BUILD)/compiler/lexer.c: compiler/lexer.l | deps
	@mkdir -p $(dir $@)
	flex -o $@ $<

# Generated sources are compiled with the same warnings, less the ones flex's skeleton trips.
$(BUILD)/compiler/lexer.o: $(BUILD)/compiler/lexer.c $(BUILD)/compiler/parser.tab.h compiler/nnc.h compiler/ops.def runtime/kernels/nnk_acts.def
	$(CC) $(CFLAGS) $(WARN) -Wno-unused-function -Wno-sign-compare -Icompiler -I$(BUILD)/compiler -Iruntime -c -o $@ $<

$(BUILD)/compiler/parser.tab.o: $(BUILD)/compiler/parser.tab.c compiler/nnc.h compiler/ops.def runtime/kernels/nnk_acts.def
	$(CC) $(CFLAGS) $(WARN) -Icompiler -I$(BUILD)/compiler -Iruntime -c -o $@ $<

$(BUILD)/compiler/%.o: compiler/%.c $(BUILD)/compiler/parser.tab.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -MMD -MP -Icompiler -I$(BUILD)/compiler -Iruntime -c -o $@ $<

$(BUILD)/runtime/%.o: runtime/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -MMD -MP -Iruntime -c -o $@ $<

# The whole suite again with nnc, the runtime and the generated programs under ASan and UBSan. It
# rebuilds build/ with the sanitizers (and leaves it so: `make clean` before a normal build).
# The suites that run nnc, the runtime and generated programs on many inputs; the model suites (slow
# under the sanitizers, and the same code paths) run in the plain `make test`, and so do the other
# four fifths of the ops cases (NNC_OPS_SHARD: every fifth one here) and the bisect suite (the reference
# evaluator and the programs it builds, which the reference and program suites cover here), so that CI
# stays within its 30 minutes on the slowest machine: 1,676 s with every third ops case on a busy Zen 5,
# 1,698 s with every fourth on a Zen 3 on 2026-12-02; 2,405 s with bisect here on a busy Zen 4 on
# 2026-12-03 (340 s of it bisect under the sanitizers, 27 s without).
SANITIZE_SUITES ?= runtime compiler errors fuzz golden golden-reference program ops reference
test-sanitize:
	$(MAKE) clean
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 NNC_OPS_THREADS=1,3 NNC_OPS_SHARD=0/5 NNC_OPS_OPT=-O1 \
		$(MAKE) SANITIZE=1 TEST_SUITES="$(SANITIZE_SUITES)" test

# Speed against PyTorch, side by side in one run (see tools/bench.py).
bench: all
	@/usr/bin/python3 tools/bench.py

# Every classification family of models/ against ONNX Runtime (1 thread), and the README's model table
# with those figures (tools/model_table.py --speed).
bench-zoo: all
	@mkdir -p build/bench
	@/usr/bin/python3 tools/bench.py --zoo --nnc-ort-only --threads 1 --rounds 2 --runs 3 --json build/bench/zoo.json
	@/usr/bin/python3 tools/model_table.py --speed build/bench/zoo.json

# The README's first command: the textbook ResNet-18 trained on Fashion-MNIST, compiled and run on
# the 10,000 test images, then ResNet-50's speed.
demo: all
	@sh demo/demo.sh

# Fuzzing (libFuzzer with ASan and UBSan): `make fuzz FUZZ_SECONDS=N` runs each target for N seconds,
# growing build/fuzz/corpus/TARGET from the seeds; a crashing input is kept in
# tests/fuzz/regressions/TARGET/, which `make test` replays (suite "fuzz").
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE
FRONTEND_SRC := $(filter-out compiler/main.c,$(wildcard compiler/*.c) $(wildcard compiler/passes/*.c)) \
                $(BUILD)/compiler/lexer.c $(BUILD)/compiler/parser.tab.c $(RUNTIME_SRC)

$(BUILD)/fuzz/fuzz_frontend: tests/fuzz/fuzz_frontend.c $(FRONTEND_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Icompiler -I$(BUILD)/compiler -Iruntime -o $@ $^ -lm -lpthread

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(RUNTIME_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Iruntime -o $@ $^ -lm -lpthread

# The same targets without libFuzzer, replaying saved inputs (built with the sanitizers when clang has them).
$(BUILD)/fuzz/replay_frontend: tests/fuzz/replay.c tests/fuzz/fuzz_frontend.c $(FRONTEND_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -Icompiler -I$(BUILD)/compiler -Iruntime -o $@ $^ -lm -lpthread

$(BUILD)/fuzz/replay_%: tests/fuzz/replay.c tests/fuzz/fuzz_%.c $(RUNTIME_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -Iruntime -o $@ $^ -lm -lpthread

# Random models against the reference evaluator with new seeds: `make fuzz-models N=2000 SEED=7`; a
# failing model is reduced and saved under tests/fuzz_models/regressions/, which `make test` replays.
N ?= 1000
SEED ?= $(shell date +%s)
fuzz-models: all
	@/usr/bin/python3 tests/fuzz_models/run.py --seed $(SEED) --count $(N) --jobs 2 --save-dir tests/fuzz_models/regressions

fuzz: $(addprefix $(BUILD)/fuzz/fuzz_,$(FUZZ_TARGETS))
	@sh tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The C of every model, committed so that a reader sees what nnc emits (tests check it is current);
# for --target generic, so that it is the same on every machine.
generated: $(BUILD)/nnc
	@rm -f generated/*.c generated/*.h
	@for net in models/*.net; do \
		name=$$(basename $$net .net); \
		$(BUILD)/nnc $$net --main --target generic -o generated/$$name.c || exit 1; \
	done
	@echo "generated/: $$(ls generated/*.c | wc -l) models"

clean:
	rm -rf $(BUILD)

-include $(wildcard $(BUILD)/compiler/*.d $(BUILD)/compiler/passes/*.d $(BUILD)/runtime/*.d)

.PHONY: all clean deps test generated bench bench-zoo demo fuzz fuzz-models test-sanitize
