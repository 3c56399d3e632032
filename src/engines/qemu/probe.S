/* berth's accelerator probe: a 64 KiB firmware image. The CPU starts in real mode at the
   reset vector, switches to protected mode, builds identity page tables, enters long mode
   (what every x86-64 kernel does early, and where a broken KVM hangs), writes "L" to COM1
   and exits QEMU through isa-debug-exit (exit status 0x21). Loaded at 0xF0000. */
    .code16
    .org 0
start:
    cli
    movw $0x3f8, %dx
    movb $'R', %al
    outb %al, %dx
    lgdtl %cs:gdtr
    movl %cr0, %eax
    orb $1, %al
    movl %eax, %cr0
    ljmpl $0x08, $(0xF0000 + pm32)
    .code32
pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $0x1000, %edi
    movl $0xC00, %ecx
    xorl %eax, %eax
    rep stosl
    movl $0x2003, 0x1000
    movl $0x3003, 0x2000
    movl $0x0083, 0x3000
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $0x1000, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    ljmp $0x18, $(0xF0000 + lm64)
    .code64
lm64:
    movw $0x3f8, %dx
    movb $'L', %al
    outb %al, %dx
    movw $0xf4, %dx
    movb $0x10, %al
    outb %al, %dx
1:  hlt
    jmp 1b
    .align 8
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
gdtr:
    .word gdtr - gdt - 1
    .long 0xF0000 + gdt
    .org 0xFFF0
    .code16
reset:
    ljmp $0xF000, $start
    .org 0x10000
