#include <stdio.h>
#include "ctl.h"
int ctl_produce(ctl_t *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "todo\n"); return 2; }
int ctl_topics(ctl_t *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "todo\n"); return 2; }
