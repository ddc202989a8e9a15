/* ferryctl: placeholder main until the daemon lands (issue 3). */
#include "config.h"

#include <stdio.h>

int main(void)
{
	fputs("ferryctl: not built yet\n", stderr);
	return 1;
}
