/* ferryd: placeholder main until the daemon lands (issue 3). */
#include "config.h"

#include <stdio.h>

int main(void)
{
	fputs("ferryd: the daemon is not built yet\n", stderr);
	return 1;
}
