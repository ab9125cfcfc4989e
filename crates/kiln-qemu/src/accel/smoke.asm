; kiln accelerator smoke guest (nasm -f bin): the code of a 64 KiB -bios
; image, placed at its start (F000:0000); kiln adds the reset vector
; `jmp f000:0000` at offset 0xfff0. It prints a marker per stage on COM1
; (R real mode, P protected mode, L long mode with paging, W workload
; done), then "kiln-smoke-ok" and exits QEMU through isa-debug-exit
; (port 0xf4). The workload (20M instructions with paging on) finishes in
; milliseconds under a working KVM or TCG, and takes seconds when the
; "accelerator" emulates every instruction (broken nested virtualization).
bits 16
org 0
start:
    cli
    mov dx, 0x3f8
    mov al, 'R'
    out dx, al
    ; The GDT is copied to RAM: some nested hypervisors cannot load
    ; descriptors from the ROM region.
    xor ax, ax
    mov es, ax
    mov ax, cs
    mov ds, ax
    mov si, gdt
    mov di, 0x500
    mov cx, gdt_end - gdt
    cld
    rep movsb
    xor ax, ax
    mov ds, ax
    o32 lgdt [0x500 + (gdt_desc - gdt)]
    mov eax, cr0
    and eax, 0x9fffffff         ; caches on (CD, NW off)
    or eax, 1                   ; PE
    mov cr0, eax
    jmp dword 0x08:(0xF0000 + pm32)
bits 32
pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x8000
    mov dx, 0x3f8
    mov al, 'P'
    out dx, al
    ; identity map the first 16 MiB with 2 MiB pages:
    ; PML4 0x1000 -> PDPT 0x4000 -> PD 0x3000
    mov edi, 0x1000
    mov ecx, 4*1024
    xor eax, eax
    rep stosd
    mov dword [0x1000], 0x4003
    mov dword [0x4000], 0x3003
    mov edi, 0x3000
    mov eax, 0x83
    mov ecx, 8
.pd:
    mov dword [edi], eax
    add eax, 0x200000
    add edi, 8
    loop .pd
    mov eax, cr4
    or eax, 1 << 5              ; PAE
    mov cr4, eax
    mov eax, 0x1000
    mov cr3, eax
    mov ecx, 0xC0000080         ; EFER.LME
    rdmsr
    or eax, 1 << 8
    wrmsr
    mov eax, cr0
    or eax, 1 << 31             ; PG
    mov cr0, eax
    jmp 0x18:(0xF0000 + lm64)
bits 64
lm64:
    mov dx, 0x3f8
    mov al, 'L'
    out dx, al
    ; workload: 10M loop iterations, then 4 MiB of stores at 8 MiB
    mov rcx, 10000000
.spin:
    dec rcx
    jnz .spin
    mov rdi, 0x800000
    mov rcx, 0x80000
    xor eax, eax
    rep stosq
    mov dx, 0x3f8
    mov al, 'W'
    out dx, al
    lea rsi, [rel msg]
.next:
    lodsb
    test al, al
    jz .done
    out dx, al
    jmp .next
.done:
    mov dx, 0xf4
    mov al, 0x10
    out dx, al
.halt:
    hlt
    jmp .halt
msg: db 10, 'kiln-smoke-ok', 10, 0
align 8
gdt:
    dq 0
    dq 0x00CF9A000000FFFF       ; 0x08: 32-bit code
    dq 0x00CF92000000FFFF       ; 0x10: data
    dq 0x00AF9A000000FFFF       ; 0x18: 64-bit code
gdt_desc:
    dw gdt_desc - gdt - 1
    dd 0x500
gdt_end:
