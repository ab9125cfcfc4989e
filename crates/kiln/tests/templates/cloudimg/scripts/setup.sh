# Run as root through the template's execute_command (sudo -E sh -eu).
install -m 0644 /tmp/kiln-motd /etc/motd
cp -a /tmp/kiln-tree /opt/kiln-tree
{
    echo "user=$(id -un)"
    echo "build=$PACKER_BUILD_NAME"
    echo "builder=$PACKER_BUILDER_TYPE"
    echo "flavour=$FLAVOUR"
    echo "empty=[$EMPTY]"
} > /etc/kiln-facts
echo "setup ran as $(id -un) with FLAVOUR=$FLAVOUR"
